#!/usr/bin/env bash
# ThreadSanitizer and AddressSanitizer runs of the magazine cache
# (skmem-magazine), packet pool (skmem-packet), arena (skmem-arena) and
# rx/tx workload (skmem-examples) test suites, with
# nightly and -Zbuild-std so that std (its atomics, locks, thread exit) is
# instrumented too. Works offline once the nightly `rust-src` component is
# installed. Each sanitizer builds into its own target directory
# (target/tsan, target/asan). Any report fails the run: TSan exits 66 when
# it reported anything, ASan aborts at the first error.
#
#   ci/sanitizers.sh            # both
#   ci/sanitizers.sh thread     # one of: thread, address
set -euo pipefail
cd "$(dirname "$0")/.."

# Nightly with its standard library sources (-Zbuild-std). Installed when
# missing; where that is impossible (offline without them), the step says
# so and passes.
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "the nightly toolchain is not installed; trying to install it (with rust-src)..."
    if ! rustup toolchain install nightly --profile minimal --component rust-src; then
        echo "SKIPPED: sanitizers need the nightly toolchain, which is not installed and could not be installed."
        exit 0
    fi
fi
if ! rustup component list --toolchain nightly --installed | grep -q '^rust-src'; then
    echo "rust-src is not installed for nightly; trying to install it..."
    if ! rustup component add --toolchain nightly rust-src; then
        echo "SKIPPED: sanitizers need nightly's rust-src component (-Zbuild-std), which could not be installed."
        exit 0
    fi
fi
rustup run nightly rustc --version

TARGET=x86_64-unknown-linux-gnu
# Library and integration tests; doc tests are not built with the
# sanitizer flags (rustdoc takes them separately) and test nothing the
# suites do not. The loom models need --cfg loom (ci/loom.sh).
SUITES=(
    -p skmem-magazine -p skmem-packet -p skmem-arena -p skmem-examples --lib
    # skmem-magazine: the cache
    --test cache --test maintenance --test model --test resize --test slab
    --test stress --test stress_owner_only --test unwind
    # skmem-packet: the pool
    --test pool --test pool_hostile --test upp --test backends_threads
    # skmem-arena: the arena
    --test arena_view --test arena_ipc --test arena_hostile
    # skmem-examples: the two-thread rx/tx workload over a pool
    --test rx_tx
)

run() {
    local san=$1
    local start=$SECONDS
    local extra_cfg=""
    local rseq="${SKMEM_RSEQ-}"
    if [ "$san" = thread ]; then
        # Two kinds of synchronisation TSan cannot see, each replaced by an
        # equivalent it can (ThreadSanitizer only; ASan runs the defaults):
        #
        # * rustix's default backend makes raw system calls, so TSan never
        #   sees mmap/munmap: when one test thread unmaps an arena span and
        #   another maps a new one at the same address, TSan still holds
        #   the old mapping's accesses (Mmap::zero's memset) and reports
        #   the new owner's first write (Arena::create) as a race with
        #   them. Through libc (rustix's documented `--cfg
        #   rustix_use_libc`), TSan's mmap/munmap interceptors reset the
        #   range's history.
        # * PerCpu's rseq fronts push and pop in inline assembly, which TSan
        #   does not instrument: an object freed through a front and
        #   drained by a purge on another thread (ordered by the
        #   stop flag and membarrier, skmem-magazine local/front.rs) looks
        #   unsynchronised. SKMEM_RSEQ=0 runs PerCpu on its locked slots,
        #   every access visible; the fronts are exercised by the default
        #   runs and ASan.
        extra_cfg="--cfg rustix_use_libc"
        rseq=0
    fi
    echo "--- ${san} sanitizer: building and running ${SUITES[*]}"
    # Release with debug assertions: the suites' stress loops run tens of
    # times slower in a debug build under a sanitizer. Without the release
    # profile's thin LTO and single codegen unit, which would make building
    # std and a dozen test binaries take several times longer.
    CARGO_PROFILE_RELEASE_LTO=false \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
    RUSTFLAGS="-Zsanitizer=${san} -Cdebug-assertions=on -Cforce-frame-pointers=yes ${extra_cfg}" \
    RUSTDOCFLAGS="-Zsanitizer=${san}" \
    CARGO_TARGET_DIR="target/${san:0:1}san" \
    SKMEM_RSEQ="$rseq" \
        cargo +nightly test -Zbuild-std --target "$TARGET" --release "${SUITES[@]}"
    echo "--- ${san} sanitizer: clean in $((SECONDS - start)) s"
}

# handle_segv/handle_sigbus=0: the arena tests prove protections by letting
# a forked child fault (SIGSEGV on a read-only or guard page, SIGBUS on a
# short memfd) and checking the signal that killed it; the sanitizer's own
# handler would turn that death into a report and exit code 66 / 1.
# ci/tsan.supp: the one race that is a function's purpose (a view redirect
# swapping pages under running readers), with why.
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1 handle_segv=0 handle_sigbus=0 suppressions=$PWD/ci/tsan.supp}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1 detect_stack_use_after_return=1 handle_segv=0 handle_sigbus=0}"
# Leaks the tests make on purpose (a forgotten view), listed by test name.
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/ci/lsan.supp print_suppressions=0}"

if [ $# -eq 0 ]; then
    set -- thread address
fi
for san in "$@"; do
    case "$san" in
    thread | address) run "$san" ;;
    *)
        echo "unknown sanitizer '$san' (thread or address)" >&2
        exit 2
        ;;
    esac
done

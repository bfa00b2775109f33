#!/usr/bin/env bash
# The tests of every non-default feature combination that has tests (the
# default features are tested by ci/test.sh). Each combination also gets
# clippy, so code behind a feature is held to the same standard.
#
# Crates with features:
#   skmem-traits: std (default), serde
#   skmem-packet: serde (round trips of every stats struct through JSON)
#   skmem-arena: serde (the same for the arena's stats)
set -euo pipefail
cd "$(dirname "$0")/.."

run() {
    echo "--- cargo test $* ---"
    cargo test "$@"
    cargo clippy --all-targets "$@" -- -D warnings
}

# No tests of its own without serde: checks that the no_std build compiles
# and passes clippy.
run -p skmem-traits --no-default-features
run -p skmem-traits --features serde
run -p skmem-traits --no-default-features --features serde
run -p skmem-packet --features serde
run -p skmem-arena --features serde

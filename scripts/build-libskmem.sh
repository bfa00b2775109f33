#!/usr/bin/env bash
# Builds the C library (crate skmem-malloc, release profile) and names it
# libskmem.so next to cargo's output; prints its absolute path.
#
#   LD_PRELOAD=$(scripts/build-libskmem.sh) SKMEM_SHOW_STATS=1 ls
#
# Cargo names a cdylib after its Rust crate (libskmem_malloc.so); the
# library is libskmem.so so that it does not collide with the facade crate
# `skmem`'s own artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p skmem-malloc --lib --quiet >&2
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
cp -f "$target_dir/release/libskmem_malloc.so" "$target_dir/release/libskmem.so"
echo "$target_dir/release/libskmem.so"

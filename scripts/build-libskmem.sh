#!/usr/bin/env bash
# Builds the C library (crate skmem-malloc, release profile) and names it
# libskmem.so next to cargo's output; prints its absolute path.
#
#   LD_PRELOAD=$(scripts/build-libskmem.sh) SKMEM_SHOW_STATS=1 ls
#   scripts/build-libskmem.sh --install /usr/local   # lib, header, skmem.pc
#
# Cargo names a cdylib after its Rust crate (libskmem_malloc.so); the
# library is renamed libskmem.so here rather than by the crate, so that it
# does not collide with the facade crate `skmem`'s own artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=""
if [ "${1:-}" = --install ]; then
    prefix=${2:?"--install needs a prefix, e.g. /usr/local"}
fi
cargo build --release -p skmem-malloc --lib --quiet >&2
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
lib=$target_dir/release/libskmem.so
cp -f "$target_dir/release/libskmem_malloc.so" "$lib"
if [ -n "$prefix" ]; then
    version=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "skmem-malloc"))')
    install -D -m 755 "$lib" "$prefix/lib/libskmem.so"
    install -D -m 644 skmem-malloc/include/skmem.h "$prefix/include/skmem.h"
    mkdir -p "$prefix/lib/pkgconfig"
    sed -e "s|@prefix@|$prefix|" -e "s|@version@|$version|" skmem-malloc/skmem.pc.in >"$prefix/lib/pkgconfig/skmem.pc"
    echo "$prefix/lib/libskmem.so"
else
    echo "$lib"
fi

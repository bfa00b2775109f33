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
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
# The thread fronts are thread-locals. In a shared library rustc defaults
# to the general-dynamic TLS model: a __tls_get_addr call on every malloc
# and free. A library that is preloaded or linked (not dlopen'ed late)
# may use initial-exec, a fixed offset from the thread pointer; only
# nightly rustc takes -Z tls-model, so use it when it is installed. Its own
# target directory keeps the stable build's cache intact.
if cargo +nightly --version >/dev/null 2>&1; then
    out=$target_dir/libskmem
    RUSTFLAGS="-Z tls-model=initial-exec" CARGO_TARGET_DIR=$out \
        cargo +nightly build --release -p skmem-malloc --lib --quiet >&2
else
    echo "build-libskmem: no nightly toolchain, building with the default TLS model (slower)" >&2
    out=$target_dir
    cargo build --release -p skmem-malloc --lib --quiet >&2
fi
lib=$target_dir/release/libskmem.so
mkdir -p "$target_dir/release"
cp -f "$out/release/libskmem_malloc.so" "$lib"
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

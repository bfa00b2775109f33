#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")/.."
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
cargo fmt --all -- --check
# The fuzz crate is its own workspace (nightly-only builds), out of reach
# of the workspace's `cargo fmt`; formatting needs no nightly.
cargo fmt --manifest-path fuzz/Cargo.toml -- --check

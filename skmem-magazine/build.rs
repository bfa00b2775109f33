//! Sets `cfg(rseq_front)` where the per-CPU fronts' restartable sequences
//! can be compiled: x86-64 Linux, outside Miri and loom (both run the locked
//! fallback).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(rseq_front)");
    println!("cargo::rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let miri = std::env::var_os("CARGO_CFG_MIRI").is_some();
    let loom = std::env::var_os("CARGO_CFG_LOOM").is_some();
    if os == "linux" && arch == "x86_64" && !miri && !loom {
        println!("cargo::rustc-cfg=rseq_front");
    }
}

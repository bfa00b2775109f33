//! `SKMEM_SHOW_STATS=1` with real caches alive at exit, in a program that
//! only uses the `skmem` facade and never calls the stats crate: the exit hook
//! takes every object's stats after the main thread's thread-locals are
//! gone (glibc runs them before `atexit` handlers) and prints the tables.

use std::process::Command;

const CHILD_ENV: &str = "SKMEM_TOP_EXIT_DUMP_CHILD";

/// The child's side; returns at once in a normal test run.
#[test]
fn child_side_of_exit_dump() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    // No call: `SKMEM_SHOW_STATS=1` is acted on when the program is
    // loaded, in any program that links the `skmem` facade.
    let region = skmem::Region::<skmem::Heap>::new(
        skmem::RegionParams::new("exit.slab-region", 128, 64),
        skmem::HeapConfig::default(),
    )
    .unwrap();
    let slab = skmem::SlabCache::new_shared(
        region,
        skmem::SlabConfig::new("exit.slab", 128),
        skmem::NoCtor,
    )
    .unwrap();
    let cache = skmem::Cache::builder("exit.cache", 200)
        .capacity(100)
        .build()
        .unwrap();
    let obj = cache.alloc().unwrap();
    // SAFETY: `obj` came from `cache` and is freed once.
    unsafe { cache.free(obj) };
    let pool = skmem::PacketPoolConfig::new("exit.pool")
        .md_count(64)
        .build::<skmem::Heap>(skmem::HeapConfig::default())
        .unwrap();
    // Alive at exit.
    std::mem::forget(cache);
    std::mem::forget(pool);
    std::mem::forget(slab);
}

#[test]
fn show_stats_prints_live_caches_at_exit() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_side_of_exit_dump", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env("SKMEM_SHOW_STATS", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {err}");
    assert!(err.contains("skmem stats at exit"), "{err}");
    for needle in [
        "magazine caches (",
        "exit.cache",
        "regions (",
        "packet pools (",
        "exit.pool",
        "exit.slab",
    ] {
        assert!(err.contains(needle), "{needle} missing from:\n{err}");
    }
}

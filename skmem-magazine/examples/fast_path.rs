//! The alloc + free fast path in isolation, for instruction counting:
//!
//! ```text
//! cargo build --release -p skmem-magazine --example fast_path
//! valgrind --tool=callgrind --toggle-collect='*fast_path*pair*' \
//!     target/release/examples/fast_path per-thread
//! ```
//!
//! `pair` is one `alloc()` + `free()` on a warm cache (the object comes
//! from, and goes back to, the loaded magazine); callgrind's inclusive
//! count for it divided by the number of calls is the cost of a pair.

use std::hint::black_box;

use skmem_magazine::{Cache, CacheConfig, CpuLocal, Global, PerCpu, PerThread};
use skmem_testkit::HeapObjects;

const PAIRS: u64 = 100_000;

#[inline(never)]
fn pair<L: CpuLocal>(cache: &Cache<HeapObjects, L>) {
    let obj = cache.alloc().expect("memory");
    // SAFETY: `obj` came from `cache` and is not used afterwards.
    unsafe { cache.free(black_box(obj)) };
}

fn run<L: CpuLocal>() -> skmem_traits::Result<()> {
    let cache: Cache<HeapObjects, L> = Cache::new(
        HeapObjects::new("fast-path", 64, 8)?,
        CacheConfig::default(),
    )?;
    // Warm up: the slot gets a loaded magazine holding one object.
    pair(&cache);
    for _ in 0..PAIRS {
        pair(black_box(&cache));
    }
    let s = cache.stats();
    println!(
        "{}: {} pairs, {} from the CPU layer, {} slab allocations",
        L::NAME,
        PAIRS + 1,
        s.cpu_alloc,
        s.slab.sl_alloc
    );
    Ok(())
}

fn main() -> skmem_traits::Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("per-cpu") => run::<PerCpu>(),
        Some("global") => run::<Global>(),
        _ => run::<PerThread>(),
    }
}

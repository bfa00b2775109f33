//! The cost of the debug mode (`skmem_slab::debug`) per alloc+free pair of
//! a magazine cache (64-byte objects, `PerThread`, heap segments): debug
//! off, each check alone, and all four (criterion, wall clock).
//!
//! Debug off is the fast path (a magazine pop and push); any flag routes
//! the cache through the locked debug magazine and the slab layer's
//! checks, so every variant pays the slow path, and `audit` pays a stack
//! walk per transaction. Run with
//! `cargo bench -p skmem-benches --bench debug`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use skmem_backends::Heap;
use skmem_magazine::{Cache, DebugFlags, PerThread};
use skmem_slab::SlabCache;

const OBJ_SIZE: usize = 64;

fn cache(name: &str, flags: DebugFlags) -> Cache<SlabCache<Heap>, PerThread> {
    Cache::builder(name, OBJ_SIZE)
        .capacity(1024)
        .locality::<PerThread>()
        .debug(flags)
        .build()
        .expect("bench cache")
}

fn debug_pairs(c: &mut Criterion) {
    let mut g = c.benchmark_group("debug-pair/64B");
    g.throughput(Throughput::Elements(1));
    let variants = [
        ("off", DebugFlags::empty()),
        ("guards", DebugFlags::GUARDS),
        ("poison", DebugFlags::POISON),
        ("audit", DebugFlags::AUDIT),
        ("leaks", DebugFlags::LEAKS),
        ("all", DebugFlags::ALL),
    ];
    for (id, flags) in variants {
        let cache = cache(&format!("bench-debug-{id}"), flags);
        let pair = || {
            let obj = cache.alloc().expect("memory");
            black_box(obj);
            // SAFETY: allocated just above, freed once, not used after.
            unsafe { cache.free(obj) };
        };
        for _ in 0..1000 {
            pair();
        }
        g.bench_function(id, |b| b.iter(pair));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = debug_pairs
}
criterion_main!(benches);

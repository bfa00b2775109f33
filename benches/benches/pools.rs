//! The wider comparison (criterion): skmem's layers (the magazine cache per
//! `CpuLocal` and the slab cache alone, on an mmap region) against the
//! malloc peers *and* the object pools Rust users pick today
//! (`sharded-slab`, `lockfree-object-pool`, an ixy.rs-style `Vec` free
//! stack), including 256-byte objects, batches of 256 and constructed-object
//! reuse. The head-to-head malloc comparison of the fast path is
//! `benches/wall.rs`.
//!
//! One module per layer registers its contenders into shared groups named
//! `pools-<workload>/<object size>` (`pools-pair/64B`, `pools-batch32/64B`,
//! `pools-burst4096/64B`, `pools-prodcons/64B`, `pools-ctor_reuse/256B`,
//! ...); the function id names the contender. Every group reports time per
//! object (`Throughput::Elements`). `scripts/bench.sh` (with
//! `BENCH_POOLS=1`) turns `target/criterion/**/new/estimates.json` into the
//! tables of `BENCHMARKS.md`.

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use skmem_benches::{workload, ObjPool};

#[path = "pools/magazine.rs"]
mod magazine;
#[path = "pools/peers.rs"]
mod peers;
#[path = "pools/slab.rs"]
mod slab;

/// Warm-up pairs run on a fresh contender before it is measured, so the
/// first samples already hit its fast path.
const WARM_PAIRS: usize = 1000;

/// Opens the group for `workload` on objects of `size` bytes.
fn group<'c>(c: &'c mut Criterion, workload: &str, size: usize) -> BenchmarkGroup<'c, WallTime> {
    c.benchmark_group(format!("pools-{workload}/{size}B"))
}

/// Measures single alloc+free pairs.
fn bench_pair<P: ObjPool>(g: &mut BenchmarkGroup<'_, WallTime>, id: &str, pool: &P) {
    workload::pairs(pool, WARM_PAIRS);
    g.throughput(Throughput::Elements(1));
    g.bench_function(id, |b| b.iter(|| workload::pair(pool)));
}

/// Measures batches of `n` (the contender's batch calls where it has them).
fn bench_batch<P: ObjPool>(g: &mut BenchmarkGroup<'_, WallTime>, id: &str, pool: &P, n: usize) {
    let mut scratch = Vec::with_capacity(n);
    workload::batch(pool, &mut scratch, n);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(id, |b| b.iter(|| workload::batch(pool, &mut scratch, n)));
}

/// Measures bursts of `n` single allocations followed by `n` single frees.
fn bench_burst<P: ObjPool>(g: &mut BenchmarkGroup<'_, WallTime>, id: &str, pool: &P, n: usize) {
    let mut scratch = Vec::with_capacity(n);
    workload::burst(pool, &mut scratch, n);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(id, |b| b.iter(|| workload::burst(pool, &mut scratch, n)));
}

/// Measures the two-thread producer/consumer hand-off (time per object).
fn bench_prodcons<P>(g: &mut BenchmarkGroup<'_, WallTime>, id: &str, pool: &P)
where
    P: ObjPool + Sync,
    for<'a> P::Handle<'a>: Send,
{
    workload::producer_consumer(pool, 4096);
    g.throughput(Throughput::Elements(1));
    g.bench_function(id, |b| {
        b.iter_custom(|iters| workload::producer_consumer(pool, iters))
    });
}

/// Measures constructed-object reuse: get, read one constructed word, put.
fn bench_ctor<P: ObjPool>(g: &mut BenchmarkGroup<'_, WallTime>, id: &str, pool: &P) {
    let expected = skmem_benches::ctor::expected_word(7);
    assert_eq!(
        workload::use_constructed(pool, 7),
        expected,
        "{id}: object not constructed"
    );
    g.throughput(Throughput::Elements(1));
    g.bench_function(id, |b| b.iter(|| workload::use_constructed(pool, 7)));
}

/// The default configuration: short runs (two cores shared with builds);
/// `scripts/bench.sh` and the command line may lengthen them.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = magazine::register_benches, slab::register_benches, peers::register_benches
}
criterion_main!(benches);

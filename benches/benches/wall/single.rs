//! Single-threaded single-object workloads: the alloc+free pair, random
//! replacement in a working set, and the burst of 4096.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use skmem_benches::workload::{self, WORKING_SET};
use skmem_benches::{BURST, OBJ_SIZE};

use super::{group, warm, Contender};

/// Registers `pair/64B`, `replace8192/64B` and `burst4096/64B`, every
/// contender in each.
pub(crate) fn register_benches(c: &mut Criterion) {
    {
        let mut g = group(c, "pair", OBJ_SIZE);
        each_contender!(&mut g, bench_pair);
        g.finish();
    }
    {
        let mut g = group(c, &format!("replace{WORKING_SET}"), OBJ_SIZE);
        each_contender!(&mut g, bench_replace);
        g.finish();
    }
    {
        let mut g = group(c, &format!("burst{BURST}"), OBJ_SIZE);
        each_contender!(&mut g, bench_burst);
        g.finish();
    }
}

/// One alloc and one free of the same object (time per pair).
fn bench_pair<P: Contender>(g: &mut BenchmarkGroup<'_, WallTime>, id: &str, pool: &P) {
    warm(pool);
    g.throughput(Throughput::Elements(1));
    g.bench_function(id, |b| b.iter(|| workload::pair(pool)));
}

/// Random replacement in a working set of [`WORKING_SET`] objects (time per
/// replacement: one free, one alloc, one write). The working set is built
/// before and given back after the measurement.
fn bench_replace<P: Contender>(g: &mut BenchmarkGroup<'_, WallTime>, id: &str, pool: &P) {
    warm(pool);
    let mut set = workload::fill(pool, WORKING_SET);
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
    for _ in 0..WORKING_SET {
        workload::replace(pool, &mut set, &mut rng);
    }
    g.throughput(Throughput::Elements(1));
    g.bench_function(id, |b| {
        b.iter(|| workload::replace(pool, &mut set, &mut rng))
    });
    workload::drain(pool, set);
}

/// [`BURST`] single allocs then as many single frees (time per object).
fn bench_burst<P: Contender>(g: &mut BenchmarkGroup<'_, WallTime>, id: &str, pool: &P) {
    warm(pool);
    let mut scratch = Vec::with_capacity(BURST);
    workload::burst(pool, &mut scratch, BURST);
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function(id, |b| {
        b.iter(|| workload::burst(pool, &mut scratch, BURST))
    });
}

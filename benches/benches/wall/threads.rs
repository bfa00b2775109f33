//! Two-thread workloads: two threads each doing pairs on one contender,
//! and a producer/consumer hand-off through a lock-free SPSC ring. The
//! threads are started once per criterion sample (`iter_custom`), not per
//! iteration, and the clock runs only while both work.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use skmem_benches::{workload, OBJ_SIZE};

use super::{group, warm, Contender};

/// Registers `pairs2t/64B` and `prodcons/64B`, every contender in each.
pub(crate) fn register_benches(c: &mut Criterion) {
    {
        let mut g = group(c, "pairs2t", OBJ_SIZE);
        each_contender!(&mut g, bench_pairs_two_threads);
        g.finish();
    }
    {
        let mut g = group(c, "prodcons", OBJ_SIZE);
        each_contender!(&mut g, bench_prodcons);
        g.finish();
    }
}

/// Two threads doing pairs at once (time per pair per thread: with both
/// threads on their own cores and no interference, the single-pair time).
fn bench_pairs_two_threads<P: Contender>(g: &mut BenchmarkGroup<'_, WallTime>, id: &str, pool: &P) {
    warm(pool);
    workload::pairs_two_threads(pool, 1000);
    g.throughput(Throughput::Elements(1));
    g.bench_function(id, |b| {
        b.iter_custom(|iters| workload::pairs_two_threads(pool, iters))
    });
}

/// The producer/consumer hand-off (time per object, first alloc to last
/// free).
fn bench_prodcons<P: Contender>(g: &mut BenchmarkGroup<'_, WallTime>, id: &str, pool: &P) {
    warm(pool);
    workload::producer_consumer(pool, 4096);
    g.throughput(Throughput::Elements(1));
    g.bench_function(id, |b| {
        b.iter_custom(|iters| workload::producer_consumer(pool, iters))
    });
}

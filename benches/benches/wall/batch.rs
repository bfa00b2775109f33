//! Batches of 32: skmem through `alloc_batch`/`free_batch`, the mallocs in
//! a loop of 32 `alloc`s then 32 `dealloc`s (they have no batch call).

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use skmem_benches::{workload, OBJ_SIZE};

use super::{group, warm, Contender};

/// Objects per batch.
const BATCH: usize = 32;

/// Registers `batch32/64B`, every contender.
pub(crate) fn register_benches(c: &mut Criterion) {
    let mut g = group(c, &format!("batch{BATCH}"), OBJ_SIZE);
    each_contender!(&mut g, bench_batch);
    g.finish();
}

/// Takes a batch and gives it back (time per object).
fn bench_batch<P: Contender>(g: &mut BenchmarkGroup<'_, WallTime>, id: &str, pool: &P) {
    warm(pool);
    let mut scratch = Vec::with_capacity(BATCH);
    workload::batch(pool, &mut scratch, BATCH);
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function(id, |b| {
        b.iter(|| workload::batch(pool, &mut scratch, BATCH))
    });
}

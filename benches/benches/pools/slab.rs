//! The slab layer alone (`skmem_slab::SlabCache` on an mmap region): every
//! operation takes the slab lock; batches take it once per 32 objects.

use criterion::Criterion;
use skmem_benches::skmem::SlabPool;
use skmem_benches::{BATCHES, BURST, OBJ_SIZE, OBJ_SIZE_LARGE};

use super::{bench_batch, bench_burst, bench_ctor, bench_pair, bench_prodcons, group};

/// Registers the slab cache in every workload group.
pub(crate) fn register_benches(c: &mut Criterion) {
    const ID: &str = "skmem-slab";
    bench_pair(
        &mut group(c, "pair", OBJ_SIZE),
        ID,
        &SlabPool::new(OBJ_SIZE),
    );
    bench_pair(
        &mut group(c, "pair", OBJ_SIZE_LARGE),
        ID,
        &SlabPool::new(OBJ_SIZE_LARGE),
    );
    for n in BATCHES {
        bench_batch(
            &mut group(c, &format!("batch{n}"), OBJ_SIZE),
            ID,
            &SlabPool::new(OBJ_SIZE),
            n,
        );
    }
    bench_burst(
        &mut group(c, &format!("burst{BURST}"), OBJ_SIZE),
        ID,
        &SlabPool::new(OBJ_SIZE),
        BURST,
    );
    bench_prodcons(
        &mut group(c, "prodcons", OBJ_SIZE),
        ID,
        &SlabPool::new(OBJ_SIZE),
    );
    let ctor_group = &mut group(c, "ctor_reuse", skmem_benches::ctor::CTOR_OBJ_SIZE);
    bench_ctor(ctor_group, ID, &SlabPool::constructed());
}

//! The magazine layer (`skmem_magazine::Cache` over the slab cache), once
//! per `CpuLocal` policy: `PerCpu`, `PerThread`, `Global`.

use criterion::Criterion;
use skmem_benches::skmem::MagPool;
use skmem_benches::{BATCHES, BURST, OBJ_SIZE, OBJ_SIZE_LARGE};
use skmem_magazine::{CpuLocal, Global, PerCpu, PerThread};

use super::{bench_batch, bench_burst, bench_ctor, bench_pair, bench_prodcons, group};

/// Registers the magazine cache, per policy, in every workload group.
pub(crate) fn register_benches(c: &mut Criterion) {
    register_policy::<PerCpu>(c, "skmem-mag-percpu");
    register_policy::<PerThread>(c, "skmem-mag-perthread");
    register_policy::<Global>(c, "skmem-mag-global");
}

fn register_policy<L: CpuLocal>(c: &mut Criterion, id: &str) {
    bench_pair(
        &mut group(c, "pair", OBJ_SIZE),
        id,
        &MagPool::<L>::new(OBJ_SIZE),
    );
    bench_pair(
        &mut group(c, "pair", OBJ_SIZE_LARGE),
        id,
        &MagPool::<L>::new(OBJ_SIZE_LARGE),
    );
    for n in BATCHES {
        bench_batch(
            &mut group(c, &format!("batch{n}"), OBJ_SIZE),
            id,
            &MagPool::<L>::new(OBJ_SIZE),
            n,
        );
    }
    {
        let burst = &mut group(c, &format!("burst{BURST}"), OBJ_SIZE);
        bench_burst(burst, id, &MagPool::<L>::new(OBJ_SIZE), BURST);
    }
    bench_prodcons(
        &mut group(c, "prodcons", OBJ_SIZE),
        id,
        &MagPool::<L>::new(OBJ_SIZE),
    );
    let ctor_group = &mut group(c, "ctor_reuse", skmem_benches::ctor::CTOR_OBJ_SIZE);
    bench_ctor(ctor_group, id, &MagPool::<L, _>::constructed());
}

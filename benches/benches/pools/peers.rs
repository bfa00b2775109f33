//! The peers: system malloc, mimalloc, jemalloc (called through
//! `GlobalAlloc`), `sharded-slab`, `lockfree-object-pool`, and a `Vec`
//! free-stack pool as in ixy.rs.

use std::alloc::System;

use criterion::Criterion;
use mimalloc::MiMalloc;
use skmem_benches::ctor::Table;
use skmem_benches::peers::{Blob, LockfreePool, Malloc, MutexVecStack, ShardedPool, VecStack};
use skmem_benches::{BATCHES, BURST, OBJ_SIZE, OBJ_SIZE_LARGE, POOL_CAPACITY};
use tikv_jemallocator::Jemalloc;

use super::{bench_batch, bench_burst, bench_ctor, bench_pair, bench_prodcons, group};

/// Registers every peer in every workload group.
pub(crate) fn register_benches(c: &mut Criterion) {
    {
        let mut g = group(c, "pair", OBJ_SIZE);
        bench_pair(&mut g, "system", &Malloc::new(System, OBJ_SIZE));
        bench_pair(&mut g, "mimalloc", &Malloc::new(MiMalloc, OBJ_SIZE));
        bench_pair(&mut g, "jemalloc", &Malloc::new(Jemalloc, OBJ_SIZE));
        bench_pair(&mut g, "sharded-slab", &ShardedPool::<Blob<16>>::new());
        bench_pair(
            &mut g,
            "lockfree-object-pool",
            &LockfreePool::<Blob<16>>::new(),
        );
        bench_pair(&mut g, "vec-stack", &VecStack::new(OBJ_SIZE, POOL_CAPACITY));
        g.finish();
    }
    {
        let mut g = group(c, "pair", OBJ_SIZE_LARGE);
        bench_pair(&mut g, "system", &Malloc::new(System, OBJ_SIZE_LARGE));
        bench_pair(&mut g, "mimalloc", &Malloc::new(MiMalloc, OBJ_SIZE_LARGE));
        bench_pair(&mut g, "jemalloc", &Malloc::new(Jemalloc, OBJ_SIZE_LARGE));
        bench_pair(&mut g, "sharded-slab", &ShardedPool::<Blob<64>>::new());
        bench_pair(
            &mut g,
            "lockfree-object-pool",
            &LockfreePool::<Blob<64>>::new(),
        );
        bench_pair(
            &mut g,
            "vec-stack",
            &VecStack::new(OBJ_SIZE_LARGE, POOL_CAPACITY),
        );
        g.finish();
    }
    for n in BATCHES {
        let mut g = group(c, &format!("batch{n}"), OBJ_SIZE);
        bench_batch(&mut g, "system", &Malloc::new(System, OBJ_SIZE), n);
        bench_batch(&mut g, "mimalloc", &Malloc::new(MiMalloc, OBJ_SIZE), n);
        bench_batch(&mut g, "jemalloc", &Malloc::new(Jemalloc, OBJ_SIZE), n);
        bench_batch(&mut g, "sharded-slab", &ShardedPool::<Blob<16>>::new(), n);
        bench_batch(
            &mut g,
            "lockfree-object-pool",
            &LockfreePool::<Blob<16>>::new(),
            n,
        );
        bench_batch(
            &mut g,
            "vec-stack",
            &VecStack::new(OBJ_SIZE, POOL_CAPACITY),
            n,
        );
        g.finish();
    }
    {
        let mut g = group(c, &format!("burst{BURST}"), OBJ_SIZE);
        bench_burst(&mut g, "system", &Malloc::new(System, OBJ_SIZE), BURST);
        bench_burst(&mut g, "mimalloc", &Malloc::new(MiMalloc, OBJ_SIZE), BURST);
        bench_burst(&mut g, "jemalloc", &Malloc::new(Jemalloc, OBJ_SIZE), BURST);
        bench_burst(
            &mut g,
            "sharded-slab",
            &ShardedPool::<Blob<16>>::new(),
            BURST,
        );
        bench_burst(
            &mut g,
            "lockfree-object-pool",
            &LockfreePool::<Blob<16>>::new(),
            BURST,
        );
        bench_burst(
            &mut g,
            "vec-stack",
            &VecStack::new(OBJ_SIZE, POOL_CAPACITY),
            BURST,
        );
        g.finish();
    }
    {
        let mut g = group(c, "prodcons", OBJ_SIZE);
        bench_prodcons(&mut g, "system", &Malloc::new(System, OBJ_SIZE));
        bench_prodcons(&mut g, "mimalloc", &Malloc::new(MiMalloc, OBJ_SIZE));
        bench_prodcons(&mut g, "jemalloc", &Malloc::new(Jemalloc, OBJ_SIZE));
        bench_prodcons(&mut g, "sharded-slab", &ShardedPool::<Blob<16>>::new());
        bench_prodcons(
            &mut g,
            "lockfree-object-pool",
            &LockfreePool::<Blob<16>>::new(),
        );
        bench_prodcons(
            &mut g,
            "vec-stack+mutex",
            &MutexVecStack::new(OBJ_SIZE, POOL_CAPACITY),
        );
        g.finish();
    }
    {
        let mut g = group(c, "ctor_reuse", skmem_benches::ctor::CTOR_OBJ_SIZE);
        bench_ctor(&mut g, "system", &Malloc::<_, true>::constructing(System));
        bench_ctor(
            &mut g,
            "mimalloc",
            &Malloc::<_, true>::constructing(MiMalloc),
        );
        bench_ctor(
            &mut g,
            "jemalloc",
            &Malloc::<_, true>::constructing(Jemalloc),
        );
        bench_ctor(&mut g, "sharded-slab", &ShardedPool::<Table>::new());
        bench_ctor(
            &mut g,
            "lockfree-object-pool",
            &LockfreePool::<Table>::new(),
        );
        bench_ctor(&mut g, "vec-stack", &VecStack::constructed(POOL_CAPACITY));
        g.finish();
    }
}

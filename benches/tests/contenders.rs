//! Every contender behaves as the workloads assume: distinct live objects,
//! batches of the requested size, constructed objects where promised, and
//! every object back after the two-thread hand-off.

use std::alloc::System;
use std::collections::HashSet;

use mimalloc::MiMalloc;
use skmem_benches::ctor::{expected_word, Table, CTOR_WORDS};
use skmem_benches::peers::{Blob, LockfreePool, Malloc, MutexVecStack, ShardedPool, VecStack};
use skmem_benches::skmem::{MagGlobal, MagPerCpu, MagPerThread, MagPool, SlabPool};
use skmem_benches::{workload, ObjPool, Ptr, OBJ_SIZE, POOL_CAPACITY};
use skmem_magazine::{Global, PerCpu, PerThread};
use tikv_jemallocator::Jemalloc;

/// Takes `n` objects one by one, checks their addresses are distinct and
/// aligned, and gives them back.
fn distinct_singles<P>(pool: &P, n: usize, align: usize)
where
    for<'a> P: ObjPool<Handle<'a> = Ptr> + 'a,
{
    let hs: Vec<Ptr> = (0..n).map(|_| pool.get()).collect();
    let set: HashSet<usize> = hs.iter().map(|h| h.0.as_ptr() as usize).collect();
    assert_eq!(set.len(), n, "objects handed out twice");
    assert!(
        hs.iter().all(|h| h.0.as_ptr() as usize % align == 0),
        "misaligned object"
    );
    for h in hs {
        // SAFETY: taken from `pool` above, given back once.
        unsafe { pool.put(h) };
    }
}

/// A batch of `n` yields `n` distinct objects and leaves the scratch empty.
fn batch_of<P>(pool: &P, n: usize)
where
    for<'a> P: ObjPool<Handle<'a> = Ptr> + 'a,
{
    let mut scratch = Vec::with_capacity(n);
    pool.get_batch(&mut scratch, n);
    assert_eq!(scratch.len(), n);
    let set: HashSet<usize> = scratch.iter().map(|h| h.0.as_ptr() as usize).collect();
    assert_eq!(set.len(), n, "batch repeated an object");
    // SAFETY: every handle was just taken from `pool`.
    unsafe { pool.put_batch(&mut scratch) };
    assert!(scratch.is_empty());
    workload::batch(pool, &mut scratch, n);
    assert!(scratch.is_empty());
}

#[test]
fn malloc_peers_hand_out_distinct_objects() {
    distinct_singles(&Malloc::new(System, OBJ_SIZE), 100, 8);
    distinct_singles(&Malloc::new(MiMalloc, OBJ_SIZE), 100, 8);
    distinct_singles(&Malloc::new(Jemalloc, OBJ_SIZE), 100, 8);
    batch_of(&Malloc::new(MiMalloc, OBJ_SIZE), 32);
}

#[test]
fn skmem_contenders_hand_out_distinct_aligned_objects() {
    distinct_singles(&SlabPool::new(OBJ_SIZE), 300, 64);
    distinct_singles(&MagPerCpu::new(OBJ_SIZE), 300, 64);
    distinct_singles(&MagPerThread::new(OBJ_SIZE), 300, 64);
    distinct_singles(&MagGlobal::new(OBJ_SIZE), 300, 64);
}

#[test]
fn skmem_batches_are_full_and_distinct() {
    for n in [32, 256] {
        batch_of(&SlabPool::new(OBJ_SIZE), n);
        batch_of(&MagPerCpu::new(OBJ_SIZE), n);
        batch_of(&MagPerThread::new(OBJ_SIZE), n);
        batch_of(&MagGlobal::new(OBJ_SIZE), n);
    }
}

#[test]
fn vec_stack_returns_every_object() {
    let pool = VecStack::new(OBJ_SIZE, 64);
    distinct_singles(&pool, 64, 64);
    let mut scratch = Vec::with_capacity(64);
    workload::burst(&pool, &mut scratch, 64);
    distinct_singles(&pool, 64, 64);
}

#[test]
fn constructed_objects_are_constructed() {
    fn check<P: ObjPool>(pool: &P, name: &str) {
        for word in [0, 7, CTOR_WORDS - 1] {
            assert_eq!(
                workload::use_constructed(pool, word),
                expected_word(word),
                "{name} word {word}"
            );
        }
    }
    check(&Malloc::<_, true>::constructing(System), "system");
    check(&ShardedPool::<Table>::new(), "sharded-slab");
    check(&LockfreePool::<Table>::new(), "lockfree-object-pool");
    check(&VecStack::constructed(16), "vec-stack");
    check(&SlabPool::constructed(), "skmem-slab");
    check(&MagPool::<PerCpu, _>::constructed(), "percpu");
    check(&MagPool::<PerThread, _>::constructed(), "perthread");
    check(&MagPool::<Global, _>::constructed(), "global");
}

#[test]
fn value_pools_support_every_workload() {
    let sharded = ShardedPool::<Blob<16>>::new();
    workload::pairs(&sharded, 10);
    let mut scratch = Vec::with_capacity(32);
    workload::batch(&sharded, &mut scratch, 32);
    workload::burst(&sharded, &mut scratch, 32);
    let lockfree = LockfreePool::<Blob<16>>::new();
    workload::pairs(&lockfree, 10);
    let mut scratch = Vec::with_capacity(32);
    workload::burst(&lockfree, &mut scratch, 32);
}

#[test]
fn producer_consumer_frees_every_object() {
    // The mutex stack holds exactly POOL_CAPACITY objects: after many more
    // hand-offs than that, all of them must be back (or `get` would panic).
    let stack = MutexVecStack::new(OBJ_SIZE, POOL_CAPACITY);
    workload::producer_consumer(&stack, 3 * POOL_CAPACITY as u64);
    let all: Vec<Ptr> = (0..POOL_CAPACITY).map(|_| stack.get()).collect();
    assert_eq!(
        all.iter().map(|h| h.0).collect::<HashSet<_>>().len(),
        POOL_CAPACITY
    );
    for h in all {
        // SAFETY: taken from `stack` above, given back once.
        unsafe { stack.put(h) };
    }

    let mag = MagPerThread::new(OBJ_SIZE);
    workload::producer_consumer(&mag, 50_000);
    let stats = mag.0.stats();
    assert_eq!(stats.slab.sl_alloc_fail, 0);
    assert_eq!(
        stats.slab.sl_bufinuse, stats.cached_objs,
        "every object taken from the slab layer rests in the magazine layer"
    );
}

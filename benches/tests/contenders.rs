//! Every contender behaves as the workloads assume: distinct live objects,
//! batches of the requested size, constructed objects where promised, and
//! every object back after the two-thread workloads; the working-set
//! replacement keeps its set live and writes what it says.

use std::alloc::System;
use std::collections::HashSet;

use mimalloc::MiMalloc;
use skmem_benches::ctor::{expected_word, Table, CTOR_WORDS};
use skmem_benches::peers::{Blob, LockfreePool, Malloc, MutexVecStack, ShardedPool, VecStack};
use skmem_benches::skmem::{
    HeapGlobal, HeapPerCpu, HeapPerThread, MagGlobal, MagPerCpu, MagPerThread, MagPool, SlabPool,
};
use skmem_benches::{workload, ObjPool, Ptr, OBJ_SIZE};
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
fn heap_contenders_hand_out_distinct_aligned_objects() {
    distinct_singles(&HeapPerCpu::on_heap(OBJ_SIZE), 300, 64);
    distinct_singles(&HeapPerThread::on_heap(OBJ_SIZE), 300, 64);
    distinct_singles(&HeapGlobal::on_heap(OBJ_SIZE), 300, 64);
    batch_of(&HeapPerThread::on_heap(OBJ_SIZE), 32);
    let pool = HeapPerCpu::on_heap(OBJ_SIZE);
    assert!(
        pool.locality().contains("cpu"),
        "PerCpu reports a per-CPU locality, got {:?}",
        pool.locality()
    );
}

#[test]
fn working_set_replace_keeps_the_set_live_and_writes_each_new_object() {
    // A pool of exactly 65 objects: the set holds 64; a lost or doubled
    // object would make `get` panic or repeat an address.
    const SET: usize = 64;
    let pool = VecStack::new(OBJ_SIZE, SET + 1);
    let mut set = workload::fill(&pool, SET);
    let seed = 0x1234_5678_9abc_def1_u64;
    let mut rng = seed;
    for _ in 0..10_000 {
        workload::replace(&pool, &mut set, &mut rng);
    }
    assert_eq!(
        set.iter().map(|h| h.0).collect::<HashSet<_>>().len(),
        SET,
        "working set holds distinct objects"
    );
    // Replay the index sequence: the last slot replaced holds the last
    // random number, written into its new object.
    let mut replay = seed;
    let mut last = (0, 0);
    for _ in 0..10_000 {
        let r = workload::xorshift(&mut replay);
        last = ((r as usize) & (SET - 1), r);
    }
    // SAFETY: `set[last.0]` is a live object of `pool`, 8-aligned, 64 bytes.
    let word = unsafe { set[last.0].0.cast::<u64>().read() };
    assert_eq!(word, last.1, "the replacement object was written");
    let spare = pool.get();
    assert!(
        !set.contains(&spare),
        "the one free object is not in the set"
    );
    // SAFETY: taken from `pool` above, given back once.
    unsafe { pool.put(spare) };
    workload::drain(&pool, set);
    distinct_singles(&pool, SET + 1, 64);
}

#[test]
fn two_threads_doing_pairs_lose_nothing() {
    // Two objects for two threads: a lost object would make `get` panic in
    // a worker (and the join fail).
    let stack = MutexVecStack::new(OBJ_SIZE, 2);
    let elapsed = workload::pairs_two_threads(&stack, 20_000);
    assert!(elapsed.as_nanos() > 0);
    let both = [stack.get(), stack.get()];
    assert_ne!(both[0], both[1]);
    for h in both {
        // SAFETY: taken from `stack` above, given back once.
        unsafe { stack.put(h) };
    }

    let mag = HeapPerThread::on_heap(OBJ_SIZE);
    workload::pairs_two_threads(&mag, 20_000);
    let stats = mag.0.stats();
    assert_eq!(
        stats.slab.sl_bufinuse, stats.cached_objs,
        "every object taken from the slab layer rests in the magazine layer"
    );
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
    // At most HANDOFF_RING + 2 objects are out at once (a full ring, one in
    // the producer's hand, one being freed by the consumer): a stack of
    // exactly that many runs dry, and `get` panics, if one object is lost.
    let cap = workload::HANDOFF_RING + 2;
    let stack = MutexVecStack::new(OBJ_SIZE, cap);
    workload::producer_consumer(&stack, 100_000);
    let all: Vec<Ptr> = (0..cap).map(|_| stack.get()).collect();
    assert_eq!(all.iter().map(|h| h.0).collect::<HashSet<_>>().len(), cap);
    for h in all {
        // SAFETY: taken from `stack` above, given back once.
        unsafe { stack.put(h) };
    }

    let mag = HeapPerCpu::on_heap(OBJ_SIZE);
    workload::producer_consumer(&mag, 50_000);
    let stats = mag.0.stats();
    assert_eq!(stats.slab.sl_alloc_fail, 0);
    assert_eq!(stats.slab.sl_bufinuse, stats.cached_objs);

    let mag = MagPerThread::new(OBJ_SIZE);
    workload::producer_consumer(&mag, 50_000);
    let stats = mag.0.stats();
    assert_eq!(stats.slab.sl_alloc_fail, 0);
    assert_eq!(
        stats.slab.sl_bufinuse, stats.cached_objs,
        "every object taken from the slab layer rests in the magazine layer"
    );
}

//! Proptest model tests: random single-threaded sequences of alloc, free,
//! batch, nocache, purge, reap and update against a model of what is out.
//!
//! Checked after every step: no object is handed out twice while out,
//! every object handed out is constructed, the layer's live count equals
//! "with the user + cached", constructors minus destructors equal the live
//! count, and at the end everything comes back.

mod common;

use std::collections::HashSet;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::Arc;

use common::{set_word, word, Stamp, MAGIC};
use proptest::prelude::*;
use skmem_magazine::{
    AllocFlags, Cache, CacheConfig, CpuLocal, Global, Ladder, ObjectLayer, PerCpu, PerThread,
    SeedLadder, TinyLadder,
};
use skmem_slab::{Heap, HeapConfig};
use skmem_slab::{Region, RegionParams, SlabCache, SlabConfig};
use skmem_testkit::HeapObjects;

#[derive(Debug, Clone)]
enum Op {
    Alloc,
    AllocBatch(usize),
    Free(usize),
    FreeBatch(usize),
    FreeNocache(usize),
    Purge,
    ReapNow(bool),
    Reclaim(bool),
    Update,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => Just(Op::Alloc),
        2 => (1usize..12).prop_map(Op::AllocBatch),
        8 => any::<usize>().prop_map(Op::Free),
        2 => (1usize..12).prop_map(Op::FreeBatch),
        1 => any::<usize>().prop_map(Op::FreeNocache),
        1 => Just(Op::Purge),
        1 => any::<bool>().prop_map(Op::ReapNow),
        1 => any::<bool>().prop_map(Op::Reclaim),
        1 => Just(Op::Update),
    ]
}

const IN_USE: u64 = 0xdead_beef;

fn take(out: &mut Vec<NonNull<u8>>, set: &mut HashSet<NonNull<u8>>, o: NonNull<u8>) {
    assert_eq!(
        word(o),
        MAGIC,
        "handed out an object that is not constructed or is in use"
    );
    set_word(o, IN_USE);
    assert!(set.insert(o), "{o:p} handed out twice");
    out.push(o);
}

fn give_back(
    out: &mut Vec<NonNull<u8>>,
    set: &mut HashSet<NonNull<u8>>,
    i: usize,
) -> Option<NonNull<u8>> {
    if out.is_empty() {
        return None;
    }
    let o = out.swap_remove(i % out.len());
    assert!(set.remove(&o));
    set_word(o, MAGIC); // restore the constructed state before freeing
    Some(o)
}

fn run<B: ObjectLayer, L: CpuLocal, G: Ladder>(cache: &Cache<B, L, G>, stamp: &Stamp, ops: &[Op]) {
    let mut out = Vec::new();
    let mut set = HashSet::new();
    for op in ops {
        match *op {
            Op::Alloc => {
                if let Some(o) = cache.alloc() {
                    take(&mut out, &mut set, o);
                }
            }
            Op::AllocBatch(n) => {
                let mut buf = vec![MaybeUninit::uninit(); n];
                let got = cache.alloc_batch(&mut buf, AllocFlags::NoSleep);
                for b in &buf[..got] {
                    // SAFETY: the prefix `got` is initialised.
                    take(&mut out, &mut set, unsafe { b.assume_init() });
                }
            }
            Op::Free(i) => {
                if let Some(o) = give_back(&mut out, &mut set, i) {
                    // SAFETY: `o` came from `cache` and left the model.
                    unsafe { cache.free(o) };
                }
            }
            Op::FreeBatch(n) => {
                let objs: Vec<_> = (0..n)
                    .filter_map(|i| give_back(&mut out, &mut set, i * 7))
                    .collect();
                // SAFETY: as above; distinct (removed from the set one by one).
                unsafe { cache.free_batch(&objs) };
            }
            Op::FreeNocache(i) => {
                if let Some(o) = give_back(&mut out, &mut set, i) {
                    // SAFETY: as above.
                    unsafe { cache.free_nocache(o) };
                }
            }
            Op::Purge => cache.purge(),
            Op::ReapNow(p) => cache.reap_now(p),
            Op::Reclaim(low) => cache.reclaim(low),
            Op::Update => cache.update(),
        }
        let s = cache.stats();
        assert_eq!(
            s.slab.sl_bufinuse,
            out.len() as u64 + s.cached_objs,
            "after {op:?}: {s:?}"
        );
        assert_eq!(
            stamp.ctors() - stamp.dtors(),
            s.slab.sl_bufinuse,
            "after {op:?}"
        );
        assert_eq!(s.slab.sl_alloc - s.slab.sl_free, s.slab.sl_bufinuse);
        assert_eq!(s.cpu_mag_size, cache.magazine_size());
        if matches!(op, Op::Purge | Op::ReapNow(true)) {
            assert_eq!(s.cached_objs, 0, "a purge leaves nothing cached");
        }
    }
    for o in out.drain(..) {
        set_word(o, MAGIC);
        // SAFETY: every object left came from `cache`.
        unsafe { cache.free(o) };
    }
    cache.purge();
    let s = cache.stats();
    assert_eq!(s.slab.sl_bufinuse, 0, "{s:?}");
    assert_eq!(stamp.ctors(), stamp.dtors());
}

fn heap_case<L: CpuLocal, G: Ladder>(ops: &[Op], limit: usize) {
    let stamp = Arc::new(Stamp::default());
    let layer = HeapObjects::with_ctor("model", 64, 8, stamp.clone())
        .unwrap()
        .with_limit(limit);
    let cache: Cache<_, L, G> = Cache::new(
        layer,
        CacheConfig::default()
            .register(false)
            .dynamic(true)
            .contention_threshold(0),
    )
    .unwrap();
    run(&cache, &stamp, ops);
}

fn slab_case<L: CpuLocal, G: Ladder>(ops: &[Op]) {
    let stamp = Arc::new(Stamp::default());
    let region = Region::<Heap>::new(
        RegionParams::new("model-slab", 64, 64).seg_size(4096),
        HeapConfig::default(),
    )
    .unwrap();
    let slab = SlabCache::new(region, SlabConfig::new("model-slab", 64), stamp.clone()).unwrap();
    let cache: Cache<_, L, G> = Cache::new(slab, CacheConfig::default().register(false)).unwrap();
    run(&cache, &stamp, ops);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn model_global_tiny(ops in prop::collection::vec(op(), 1..120), limit in 4usize..64) {
        heap_case::<Global, TinyLadder>(&ops, limit);
    }

    #[test]
    fn model_per_cpu_tiny(ops in prop::collection::vec(op(), 1..120), limit in 4usize..64) {
        heap_case::<PerCpu, TinyLadder>(&ops, limit);
    }

    #[test]
    fn model_per_thread_tiny(ops in prop::collection::vec(op(), 1..120), limit in 4usize..64) {
        heap_case::<PerThread, TinyLadder>(&ops, limit);
    }

    #[test]
    fn model_per_thread_seed(ops in prop::collection::vec(op(), 1..200)) {
        heap_case::<PerThread, SeedLadder>(&ops, usize::MAX);
    }

    #[test]
    fn model_on_slab_per_cpu(ops in prop::collection::vec(op(), 1..150)) {
        slab_case::<PerCpu, TinyLadder>(&ops);
    }

    #[test]
    fn model_on_slab_per_thread_seed(ops in prop::collection::vec(op(), 1..150)) {
        slab_case::<PerThread, SeedLadder>(&ops);
    }
}

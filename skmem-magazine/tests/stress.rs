//! Multi-threaded stress: allocations on one thread freed on another,
//! batches, nocache frees, and a maintenance thread running update, reap and
//! purge meanwhile. Checks that no object is ever handed out twice, that
//! every object comes back, that constructors and destructors balance, and
//! that the statistics add up.

mod common;

use std::collections::HashSet;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::{Stamp, MAGIC};
use skmem_magazine::{
    AllocFlags, Cache, CacheConfig, CpuLocal, Global, Ladder, ObjectLayer, PerCpu, PerThread,
    SeedLadder, TinyLadder,
};
use skmem_slab::{Heap, HeapConfig};
use skmem_slab::{Region, RegionParams, SlabCache, SlabConfig};
use skmem_testkit::HeapObjects;

const THREADS: usize = 4;
const ROUNDS: usize = 3_000;

/// An object's first word: MAGIC while constructed and cached, the owner's
/// tag while out. Taking it with a compare-exchange proves exclusivity.
fn claim(o: NonNull<u8>, tag: u64) {
    // SAFETY: test objects are >= 8 bytes and 8-aligned; the word is only
    // accessed atomically while the object may be shared by a bug.
    let w = unsafe { &*o.cast::<AtomicU64>().as_ptr() };
    if let Err(seen) = w.compare_exchange(MAGIC, tag, Ordering::AcqRel, Ordering::Relaxed) {
        panic!("{o:p} handed out while not free (word {seen:#x})");
    }
}

fn release(o: NonNull<u8>, tag: u64) {
    // SAFETY: as in `claim`.
    let w = unsafe { &*o.cast::<AtomicU64>().as_ptr() };
    assert_eq!(w.swap(MAGIC, Ordering::AcqRel), tag);
}

#[derive(Clone, Copy)]
struct Sendable(NonNull<u8>, u64);
// SAFETY: a plain address plus tag; the test owns the object it names.
unsafe impl Send for Sendable {}

fn stress<B: ObjectLayer, L: CpuLocal, G: Ladder>(cache: &Cache<B, L, G>, stamp: &Stamp) {
    let pool: Mutex<Vec<Sendable>> = Mutex::new(Vec::new());
    let live: Mutex<HashSet<usize>> = Mutex::new(HashSet::new());
    let stop = AtomicBool::new(false);
    let next_tag = AtomicU64::new(1);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match i % 4 {
                    0 | 1 => cache.update(),
                    2 => cache.reap_now(false),
                    _ => cache.reclaim(i % 8 == 3),
                }
                if i % 16 == 15 {
                    cache.purge();
                }
                i += 1;
                std::thread::yield_now();
            }
        });
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (pool, live, next_tag) = (&pool, &live, &next_tag);
                s.spawn(move || {
                    let mut mine: Vec<Sendable> = Vec::new();
                    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (t as u64);
                    for _ in 0..ROUNDS {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        let n = (rng % 24) as usize + 1;
                        let mut got = Vec::new();
                        if rng % 3 == 0 {
                            let mut buf = vec![MaybeUninit::uninit(); n];
                            let k = cache.alloc_batch(&mut buf, AllocFlags::NoSleep);
                            // SAFETY: the first `k` are initialised.
                            got.extend(buf[..k].iter().map(|b| unsafe { b.assume_init() }));
                        } else {
                            got.extend((0..n).filter_map(|_| cache.alloc()));
                        }
                        for o in got {
                            let tag = next_tag.fetch_add(1, Ordering::Relaxed) << 8 | 0xab;
                            claim(o, tag);
                            assert!(
                                live.lock().unwrap().insert(o.as_ptr() as usize),
                                "{o:p} live twice"
                            );
                            mine.push(Sendable(o, tag));
                        }
                        // Half of what we hold goes to the shared pool, to be
                        // freed by whichever thread takes it.
                        let give = mine.len() / 2;
                        pool.lock().unwrap().extend(mine.drain(..give));
                        let theirs: Vec<Sendable> = {
                            let mut p = pool.lock().unwrap();
                            let k = p.len().min((rng % 32) as usize);
                            let at = p.len() - k;
                            p.drain(at..).collect()
                        };
                        let mut batch = Vec::new();
                        for (j, Sendable(o, tag)) in
                            theirs.into_iter().chain(mine.drain(..)).enumerate()
                        {
                            assert!(live.lock().unwrap().remove(&(o.as_ptr() as usize)));
                            release(o, tag);
                            match (j + rng as usize) % 5 {
                                // SAFETY: `o` came from `cache`; it left the model.
                                0 => unsafe { cache.free_nocache(o) },
                                1 | 2 => batch.push(o),
                                // SAFETY: as above.
                                _ => unsafe { cache.free(o) },
                            }
                        }
                        // SAFETY: as above, distinct.
                        unsafe { cache.free_batch(&batch) };
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
    });
    for Sendable(o, tag) in pool.into_inner().unwrap() {
        assert!(live.lock().unwrap().remove(&(o.as_ptr() as usize)));
        release(o, tag);
        // SAFETY: from `cache`.
        unsafe { cache.free(o) };
    }
    assert!(live.lock().unwrap().is_empty());
    let s = cache.stats();
    assert_eq!(s.slab.sl_bufinuse, s.cached_objs, "nothing out: {s:?}");
    assert_eq!(stamp.ctors() - stamp.dtors(), s.slab.sl_bufinuse);
    assert_eq!(s.slab.sl_alloc - s.slab.sl_free, s.slab.sl_bufinuse);
    assert!(
        s.cpu_alloc > 0 && s.cpu_free > 0,
        "the CPU layer was used: {s:?}"
    );
    cache.purge();
    let s = cache.stats();
    assert_eq!(s.slab.sl_bufinuse, 0, "{s:?}");
    assert_eq!(stamp.ctors(), stamp.dtors());
}

fn on_heap<L: CpuLocal, G: Ladder>(dynamic: bool) {
    let stamp = Arc::new(Stamp::default());
    let layer = HeapObjects::with_ctor("stress", 64, 8, stamp.clone()).unwrap();
    let config = CacheConfig::default()
        .register(false)
        .dynamic(dynamic)
        .contention_threshold(0);
    let cache: Cache<_, L, G> = Cache::new(layer, config).unwrap();
    stress(&cache, &stamp);
}

#[test]
fn stress_per_cpu_tiny_dynamic() {
    on_heap::<PerCpu, TinyLadder>(true);
}

#[test]
fn stress_per_thread_tiny_dynamic() {
    on_heap::<PerThread, TinyLadder>(true);
}

#[test]
fn stress_global_seed() {
    on_heap::<Global, SeedLadder>(false);
}

#[test]
fn stress_per_thread_on_slab() {
    let stamp = Arc::new(Stamp::default());
    let region = Region::<Heap>::new(
        RegionParams::new("stress-slab", 128, 20_000),
        HeapConfig::default(),
    )
    .unwrap();
    let slab = SlabCache::new(region, SlabConfig::new("stress-slab", 128), stamp.clone()).unwrap();
    let cache: Cache<_, PerThread, SeedLadder> = Cache::new(
        slab,
        CacheConfig::default()
            .register(false)
            .dynamic(true)
            .contention_threshold(1),
    )
    .unwrap();
    stress(&cache, &stamp);
}

#[test]
fn stress_per_cpu_on_slab() {
    let stamp = Arc::new(Stamp::default());
    let region = Region::<Heap>::new(
        RegionParams::new("stress-slab-cpu", 64, 20_000),
        HeapConfig::default(),
    )
    .unwrap();
    let slab = SlabCache::new(
        region,
        SlabConfig::new("stress-slab-cpu", 64),
        stamp.clone(),
    )
    .unwrap();
    let cache: Cache<_, PerCpu, TinyLadder> = Cache::new(
        slab,
        CacheConfig::default()
            .register(false)
            .dynamic(true)
            .contention_threshold(0),
    )
    .unwrap();
    stress(&cache, &stamp);
}

//! Dynamic magazine resizing under depot contention, and resize racing
//! allocations and frees.

mod common;

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{word, Stamp, MAGIC};
use skmem_magazine::{
    Cache, CacheConfig, CpuLocal, Global, PerCpu, PerThread, SeedLadder, TinyLadder,
};
use skmem_testkit::HeapObjects;

type Layer = HeapObjects<Arc<Stamp>>;

/// Makes one depot access fail its try-lock: this thread holds the depot
/// lock until another thread, needing the depot, has counted the failure.
fn force_contention<L: CpuLocal, G: skmem_magazine::Ladder>(cache: &Cache<Layer, L, G>) {
    let before = cache.contention();
    std::thread::scope(|s| {
        let t = cache.debug_hold_depot(|| {
            let t = s.spawn(|| {
                // A fresh thread on a fresh slot (or after a purge) has no
                // magazine: its alloc goes to the depot at once.
                let o = cache.alloc().unwrap();
                // SAFETY: from `cache`.
                unsafe { cache.free_nocache(o) };
            });
            while cache.contention() == before {
                std::thread::yield_now();
            }
            t
        });
        // An explicit join waits for the thread's exit hook too.
        t.join().unwrap();
    });
    assert!(cache.contention() > before);
}

#[test]
fn contention_grows_the_magazines_one_step() {
    let stamp = Arc::new(Stamp::default());
    let layer = HeapObjects::with_ctor("resize", 64, 8, stamp.clone()).unwrap();
    let cache: Cache<_, PerThread, TinyLadder> = Cache::new(
        layer,
        CacheConfig::default()
            .register(false)
            .dynamic(true)
            .contention_threshold(0),
    )
    .unwrap();
    assert_eq!(cache.magazine_size(), 1);
    // Park some objects in the CPU layer and depot first.
    let objs: Vec<NonNull<u8>> = (0..6).map(|_| cache.alloc().unwrap()).collect();
    for &o in &objs {
        // SAFETY: from `cache`.
        unsafe { cache.free(o) };
    }
    cache.update(); // start a fresh interval
    force_contention(&cache);
    cache.update();
    let s = cache.stats();
    assert_eq!(cache.magazine_size(), 2, "{s:?}");
    assert_eq!(s.cpu_mag_resize, 1);
    assert_eq!(s.cached_objs, 0, "the resize purged the old magazines");
    assert_eq!(stamp.ctors(), stamp.dtors());
    // The next interval is not judged (the seed's contention_prev trick).
    force_contention(&cache);
    cache.update();
    assert_eq!(cache.magazine_size(), 2);
    // The one after is: climb to the top of the ladder, and stay there.
    force_contention(&cache);
    cache.update();
    assert_eq!(cache.magazine_size(), 4);
    cache.update();
    force_contention(&cache);
    cache.update();
    assert_eq!(cache.magazine_size(), 4, "no step beyond the last");
    // New magazines have the new size: 4 rounds in the loaded one.
    let objs: Vec<NonNull<u8>> = (0..8).map(|_| cache.alloc().unwrap()).collect();
    for &o in &objs {
        // SAFETY: from `cache`.
        unsafe { cache.free(o) };
    }
    let s = cache.stats();
    assert_eq!((s.cpu_rounds, s.cpu_prounds), (4, 4), "{s:?}");
}

#[test]
fn static_caches_and_large_chunks_do_not_grow() {
    let stamp = Arc::new(Stamp::default());
    // Not dynamic.
    let cache: Cache<_, Global, TinyLadder> = Cache::new(
        HeapObjects::with_ctor("static", 64, 8, stamp.clone()).unwrap(),
        CacheConfig::default()
            .register(false)
            .contention_threshold(0),
    )
    .unwrap();
    force_contention(&cache);
    cache.update();
    assert_eq!(cache.magazine_size(), 1);
    // Dynamic, but 4 KiB chunks are at their last step on the seed ladder.
    let big: Cache<_, PerCpu, SeedLadder> = Cache::new(
        HeapObjects::with_ctor("big", 4096, 8, stamp).unwrap(),
        CacheConfig::default()
            .register(false)
            .dynamic(true)
            .contention_threshold(0),
    )
    .unwrap();
    assert_eq!(big.magazine_size(), 14);
    force_contention(&big);
    big.update();
    assert_eq!(big.magazine_size(), 14);
}

#[test]
fn many_threads_hammering_grow_the_magazines_and_nothing_is_lost() {
    let stamp = Arc::new(Stamp::default());
    let layer = HeapObjects::with_ctor("hammer", 128, 8, stamp.clone()).unwrap();
    let cache: Cache<_, PerCpu, SeedLadder> = Cache::new(
        layer,
        CacheConfig::default()
            .register(false)
            .dynamic(true)
            .contention_threshold(0),
    )
    .unwrap();
    let start = cache.magazine_size();
    assert_eq!(start, 30, "128-byte chunks start at 30 rounds");
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let mut held = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    // Batches larger than a magazine go to the depot often.
                    for _ in 0..100 {
                        let o = cache.alloc().unwrap();
                        assert_eq!(word(o), MAGIC);
                        held.push(o);
                    }
                    for o in held.drain(..) {
                        // SAFETY: from `cache`.
                        unsafe { cache.free(o) };
                    }
                }
            });
        }
        // Resize racing allocation and free: the updater judges contention
        // while the workers run, until the ladder's top (46) is reached.
        for _ in 0..10_000 {
            if cache.magazine_size() == 46 {
                break;
            }
            std::thread::yield_now();
            cache.update();
        }
        stop.store(true, Ordering::Relaxed);
    });
    let s = cache.stats();
    assert_eq!(
        cache.magazine_size(),
        46,
        "contention grew the magazines: {s:?}"
    );
    assert!(s.cpu_mag_resize >= 1);
    cache.purge();
    assert_eq!(cache.stats().slab.sl_bufinuse, 0);
    assert_eq!(stamp.ctors(), stamp.dtors());
}

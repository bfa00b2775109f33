//! Loom model of a magazine resize (purge, switch, re-enable inside the
//! resize perimeter) racing allocation, free, and a concurrent purge that
//! must respect the perimeter.
#![cfg(loom)]

use loom::thread;
use skmem_magazine::{Cache, CacheConfig, Global, PerCpu, TinyLadder};
use skmem_testkit::HeapObjects;

#[test]
fn loom_resize_races_alloc_and_free() {
    loom::model(|| {
        let layer = HeapObjects::new("loom-resize", 8, 8).unwrap();
        let cache: Cache<_, PerCpu, TinyLadder> =
            Cache::new(layer, CacheConfig::default().register(false).dynamic(true)).unwrap();
        let cache = loom::sync::Arc::new(cache);
        let worker = {
            let cache = cache.clone();
            thread::spawn(move || {
                // Two objects out at once: with 1-round magazines the frees
                // swap magazines and trade with the depot, racing the resize.
                let x = cache.alloc().unwrap();
                let y = cache.alloc().unwrap();
                assert_ne!(x, y);
                // SAFETY: from `cache`, each freed once.
                unsafe {
                    cache.free(x);
                    cache.free(y);
                }
                let z = cache.alloc().unwrap();
                // SAFETY: from `cache`.
                unsafe { cache.free(z) };
            })
        };
        cache.debug_resize();
        worker.join().unwrap();
        assert_eq!(cache.magazine_size(), 2);
        let s = cache.stats();
        assert_eq!(s.slab.sl_bufinuse, s.cached_objs, "{s:?}");
        cache.purge();
        assert_eq!(cache.layer().live(), 0);
    });
}

#[test]
fn loom_purge_respects_the_resize_perimeter() {
    loom::model(|| {
        let layer = HeapObjects::new("loom-perimeter", 8, 8).unwrap();
        let cache: Cache<_, Global, TinyLadder> =
            Cache::new(layer, CacheConfig::default().register(false).dynamic(true)).unwrap();
        let o = cache.alloc().unwrap();
        // SAFETY: from `cache`.
        unsafe { cache.free(o) };
        let cache = loom::sync::Arc::new(cache);
        let purger = {
            let cache = cache.clone();
            thread::spawn(move || cache.reap_now(true))
        };
        cache.debug_resize();
        purger.join().unwrap();
        assert_eq!(cache.magazine_size(), 2);
        assert_eq!(cache.stats().cached_objs, 0);
        let o = cache.alloc().unwrap();
        // SAFETY: from `cache`.
        unsafe { cache.free(o) };
        assert_eq!(
            cache.stats().cached_objs,
            1,
            "magazines re-enabled after both"
        );
        cache.purge();
        assert_eq!(cache.layer().live(), 0);
    });
}

//! Loom model of a magazine resize (purge, switch, re-enable inside the
//! resize perimeter) racing allocation, free, and a concurrent purge that
//! must respect the perimeter.
#![cfg(loom)]

use loom::thread;
use skmem_magazine::{CacheConfig, Global, PerCpu};

mod loom_common;
use loom_common::{round_trips, tiny_cache};

#[test]
fn loom_resize_races_alloc_and_free() {
    loom::model(|| {
        let cache = tiny_cache::<PerCpu>("loom-resize", CacheConfig::default().dynamic(true));
        let cache = loom::sync::Arc::new(cache);
        let worker = {
            let cache = cache.clone();
            thread::spawn(move || {
                // Two objects out at once: with 1-round magazines the frees
                // swap magazines and trade with the depot, racing the resize.
                round_trips(&cache);
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
        let cache = tiny_cache::<Global>("loom-perimeter", CacheConfig::default().dynamic(true));
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

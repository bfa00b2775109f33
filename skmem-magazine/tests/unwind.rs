//! Panics on the maintenance paths: a destructor that panics while purge,
//! reap or resize gives magazines back must not wedge the cache or lose
//! objects.

use std::mem::MaybeUninit;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use skmem_magazine::{magazine_max_objs, AllocFlags, Cache, CacheConfig, Global};
use skmem_slab::{Heap, HeapConfig};
use skmem_slab::{Region, RegionParams, SlabCache, SlabConfig};
use skmem_traits::{CpuLocal, ObjectCtor, ObjectInfo, Result};

/// Counts constructions and destructions; the next destruction after
/// `arm` panics (once).
#[derive(Default)]
struct PanickyDtor {
    armed: AtomicBool,
    built: AtomicU64,
    torn: AtomicU64,
}

impl ObjectCtor for PanickyDtor {
    fn construct(&self, _: ObjectInfo, _: Option<ObjectInfo>, _: AllocFlags) -> Result<()> {
        self.built.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn destruct(&self, _: ObjectInfo, _: Option<ObjectInfo>) {
        self.torn.fetch_add(1, Ordering::Relaxed);
        if self.armed.swap(false, Ordering::Relaxed) {
            panic!("destructor panics once");
        }
    }
}

type Panicky = Cache<SlabCache<Heap, Arc<PanickyDtor>>, Global>;

/// Objects of 128 bytes: magazines start at 30 rounds and can grow once.
fn panicky_cache(name: &str, count: usize) -> (Panicky, Arc<PanickyDtor>) {
    let dtor = Arc::new(PanickyDtor::default());
    let params = RegionParams::new(name, 128, count)
        .magazine_max_objs(magazine_max_objs(128, Global::slot_hint()));
    let region = Region::<Heap>::new(params, HeapConfig::default()).unwrap();
    let slab = SlabCache::new(region, SlabConfig::new(name, 128), dtor.clone()).unwrap();
    let cache = Cache::new(slab, CacheConfig::default().register(false)).unwrap();
    (cache, dtor)
}

/// Allocates `n` objects and frees them all into the cache.
fn churn(cache: &Panicky, n: usize) {
    let mut out = vec![MaybeUninit::uninit(); n];
    assert_eq!(cache.alloc_batch(&mut out, AllocFlags::NoSleep), n);
    for o in &out {
        // SAFETY: `alloc_batch` initialised every element; each is freed once.
        unsafe { cache.free(o.assume_init()) };
    }
}

/// Runs `f` on another thread; `None` when it has not finished in 10 s
/// (the thread is left behind, blocked).
fn on_another_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10)).ok()
}

#[test]
fn panicking_dtor_during_purge_leaves_cache_usable() {
    let (cache, dtor) = panicky_cache("panicky-purge", 512);
    churn(&cache, 300);
    let cached = cache.stats().cached_objs;
    assert!(
        cached > 2 * u64::from(cache.magazine_size()),
        "objects in several magazines: {cached}"
    );
    dtor.armed.store(true, Ordering::Relaxed);
    let caught = catch_unwind(AssertUnwindSafe(|| cache.purge()));
    assert!(caught.is_err(), "the destructor's panic reaches the caller");
    assert!(
        !dtor.armed.load(Ordering::Relaxed),
        "the destructor did panic"
    );

    // No object lost: every one that rested in a magazine went back to the
    // slab layer, the panicking one included, and was destructed once.
    let s = cache.stats();
    assert_eq!(s.cached_objs, 0, "{s:?}");
    assert_eq!(s.slab.sl_bufinuse, 0, "objects lost by the purge: {s:?}");
    assert_eq!(
        dtor.built.load(Ordering::Relaxed),
        dtor.torn.load(Ordering::Relaxed)
    );
    cache.layer().check_invariants().unwrap();

    // The perimeter was left: a purge on another thread does purge.
    let other = cache.clone();
    let after = on_another_thread(move || {
        churn(&other, 100);
        assert!(other.stats().cached_objs > 0, "magazines re-enabled");
        other.purge();
        other.stats()
    })
    .expect("purge on another thread finished");
    assert_eq!(
        after.cached_objs, 0,
        "the other thread's purge ran: {after:?}"
    );
    assert_eq!(after.slab.sl_bufinuse, 0);

    // The dynamic-resize path does not block.
    let size = cache.magazine_size();
    let other = cache.clone();
    let grown = on_another_thread(move || {
        other.debug_resize();
        other.magazine_size()
    })
    .expect("resize on another thread finished instead of blocking");
    assert!(grown > size, "resized from {size} to {grown}");

    // And the cache keeps working at the new size, with nothing lost.
    churn(&cache, 300);
    cache.purge();
    assert_eq!(cache.stats().slab.sl_bufinuse, 0);
    assert_eq!(
        dtor.built.load(Ordering::Relaxed),
        dtor.torn.load(Ordering::Relaxed)
    );
}

#[test]
fn panicking_dtor_during_resize_and_reap_loses_nothing() {
    let (cache, dtor) = panicky_cache("panicky-resize", 512);
    churn(&cache, 300);
    let size = cache.magazine_size();
    dtor.armed.store(true, Ordering::Relaxed);
    assert!(catch_unwind(AssertUnwindSafe(|| cache.debug_resize())).is_err());
    let s = cache.stats();
    assert_eq!((s.cached_objs, s.slab.sl_bufinuse), (0, 0), "{s:?}");
    assert!(cache.magazine_size() > size, "the resize completed");
    churn(&cache, 300);
    assert!(
        cache.stats().cached_objs > 0,
        "magazines re-enabled after resize"
    );

    // A plain reap (depot and previous magazines) that panics.
    cache.update();
    cache.update();
    dtor.armed.store(true, Ordering::Relaxed);
    assert!(catch_unwind(AssertUnwindSafe(|| cache.reap_now(false))).is_err());
    let s = cache.stats();
    assert_eq!(
        s.slab.sl_bufinuse, s.cached_objs,
        "only magazine-held objects are out: {s:?}"
    );
    let other = cache.clone();
    on_another_thread(move || other.purge()).expect("purge after a panicking reap");
    assert_eq!(cache.stats().slab.sl_bufinuse, 0);
    assert_eq!(
        dtor.built.load(Ordering::Relaxed),
        dtor.torn.load(Ordering::Relaxed)
    );
}

#[test]
fn new_threads_allocating_during_a_purge_loop_trip_no_assertion() {
    // Threads created while another loops `purge()` get slots born enabled
    // (after `enable` published the size), which may hold magazines before
    // `enable`'s walk reaches them. That is legitimate: no debug assertion
    // may fire, and nothing may be lost.
    use skmem_magazine::PerThread;
    let params = RegionParams::new("purge-race", 64, 4096)
        .magazine_max_objs(magazine_max_objs(64, PerThread::slot_hint()));
    let region = Region::<Heap>::new(params, HeapConfig::default()).unwrap();
    let slab = SlabCache::new(
        region,
        SlabConfig::new("purge-race", 64),
        skmem_traits::NoCtor,
    )
    .unwrap();
    let cache: Cache<_, PerThread> =
        Cache::new(slab, CacheConfig::default().register(false)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let purger = {
        let (cache, stop) = (cache.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut purges = 0u64;
            while !stop.load(Ordering::Relaxed) {
                cache.purge();
                purges += 1;
            }
            purges
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let mut spawned = 0;
    while std::time::Instant::now() < deadline {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    for _ in 0..4 {
                        let objs: Vec<_> = (0..8).filter_map(|_| cache.alloc()).collect();
                        for o in objs {
                            // SAFETY: allocated just above, freed once.
                            unsafe { cache.free(o) };
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("a worker panicked");
        }
        spawned += 4;
    }
    stop.store(true, Ordering::Relaxed);
    let purges = purger.join().expect("the purging thread panicked");
    assert!(purges > 0 && spawned > 0);
    cache.purge();
    assert_eq!(cache.stats().slab.sl_bufinuse, 0, "nothing lost");
}

/// A panic from the layer beneath during a batch allocation (here a
/// destructor that the exhausted region's reap runs in a neighbouring cache)
/// must not lose the objects the batch had already taken from the CPU
/// layer: the caller never learns of them, so they go back before the panic
/// goes on. Found by the `cache_ops` fuzz target.
#[test]
fn panic_beneath_a_batch_allocation_loses_no_object() {
    let params = RegionParams::new("panicky-batch", 128, 256)
        .magazine_max_objs(2 * magazine_max_objs(128, Global::slot_hint()));
    let region = Region::<Heap>::new(params, HeapConfig::default()).unwrap();
    let total = region.layout().obj_count;
    let make = |dtor: Arc<PanickyDtor>| {
        let slab =
            SlabCache::new(region.clone(), SlabConfig::new("panicky-batch", 128), dtor).unwrap();
        Cache::<_, Global>::new(slab, CacheConfig::default().register(false)).unwrap()
    };
    let (mine, theirs) = (
        Arc::new(PanickyDtor::default()),
        Arc::new(PanickyDtor::default()),
    );
    let cache = make(mine.clone());
    let neighbour = make(theirs.clone());
    // The neighbour's objects rest in its magazines; ours too.
    churn(&neighbour, 100);
    churn(&cache, 40);
    assert!(cache.stats().cached_objs > 0 && neighbour.stats().cached_objs > 0);
    // Our batch takes our cached objects first, then exhausts the region,
    // whose reap runs the neighbour's armed destructor.
    theirs.armed.store(true, Ordering::Relaxed);
    let mut out = vec![MaybeUninit::uninit(); total];
    let r = catch_unwind(AssertUnwindSafe(|| {
        cache.alloc_batch(&mut out, AllocFlags::NoSleep)
    }));
    assert!(r.is_err(), "the destructor's panic reaches the caller");
    // Nothing of ours is out: every object the batch took went back.
    let st = cache.stats();
    assert_eq!(
        st.slab.sl_bufinuse, st.cached_objs,
        "objects in use are exactly those cached: {st:?}"
    );
    cache.purge();
    neighbour.purge();
    assert_eq!(
        cache.stats().slab.sl_bufinuse,
        0,
        "everything back after purge"
    );
    assert_eq!(
        mine.built.load(Ordering::Relaxed),
        mine.torn.load(Ordering::Relaxed),
        "constructions and destructions balance"
    );
    // And the cache still works.
    churn(&cache, 100);
}

//! Behaviour of the magazine cache on the heap object layer.

mod common;

use std::collections::HashSet;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::Arc;

use common::{word, Stamp, MAGIC};
use skmem_magazine::{
    all_stats, AllocFlags, Cache, CacheConfig, CpuLocal, Global, Ladder, PerCpu, PerThread,
    SeedLadder, TinyLadder,
};
use skmem_testkit::HeapObjects;

type Layer = HeapObjects<Arc<Stamp>>;

fn layer(name: &str, stamp: &Arc<Stamp>) -> Layer {
    HeapObjects::with_ctor(name, 64, 8, stamp.clone()).unwrap()
}

fn tiny<L: CpuLocal>(name: &str, config: CacheConfig) -> (Cache<Layer, L, TinyLadder>, Arc<Stamp>) {
    let stamp = Arc::new(Stamp::default());
    (
        Cache::new(layer(name, &stamp), config.register(false)).unwrap(),
        stamp,
    )
}

fn alloc_n<B: skmem_magazine::ObjectLayer, L: CpuLocal, G: Ladder>(
    c: &Cache<B, L, G>,
    n: usize,
) -> Vec<NonNull<u8>> {
    (0..n).map(|_| c.alloc().expect("alloc")).collect()
}

fn free_all<B: skmem_magazine::ObjectLayer, L: CpuLocal, G: Ladder>(
    c: &Cache<B, L, G>,
    objs: &[NonNull<u8>],
) {
    for &o in objs {
        // SAFETY: every object came from `c` and is dropped by the caller.
        unsafe { c.free(o) };
    }
}

fn check_balance<L: CpuLocal, G: Ladder>(c: &Cache<Layer, L, G>, stamp: &Stamp, out: usize) {
    let s = c.stats();
    assert_eq!(
        s.slab.sl_bufinuse,
        out as u64 + s.cached_objs,
        "objects out of the layer = with users + cached: {s:?}"
    );
    assert_eq!(
        stamp.ctors() - stamp.dtors(),
        s.slab.sl_bufinuse,
        "constructed = out of the layer"
    );
    assert_eq!(s.slab.sl_alloc - s.slab.sl_free, s.slab.sl_bufinuse);
}

fn roundtrip_reuses_constructed_objects<L: CpuLocal>() {
    let (c, stamp) = tiny::<L>("roundtrip", CacheConfig::default());
    let a = c.alloc().unwrap();
    assert_eq!(word(a), MAGIC, "handed out constructed");
    assert_eq!(stamp.ctors(), 1);
    // SAFETY: `a` came from `c`.
    unsafe { c.free(a) };
    let b = c.alloc().unwrap();
    assert_eq!(a, b, "the magazine hands back the object just freed");
    assert_eq!(stamp.ctors(), 1, "no second construction");
    assert_eq!(stamp.dtors(), 0, "no destruction while cached");
    // SAFETY: as above.
    unsafe { c.free(b) };
    check_balance(&c, &stamp, 0);
    c.purge();
    assert_eq!(stamp.dtors(), 1, "purge destructs");
    assert_eq!(c.layer().live(), 0);
    check_balance(&c, &stamp, 0);
}

#[test]
fn roundtrip_global() {
    roundtrip_reuses_constructed_objects::<Global>();
}

#[test]
fn roundtrip_per_cpu() {
    roundtrip_reuses_constructed_objects::<PerCpu>();
}

#[test]
fn roundtrip_per_thread() {
    roundtrip_reuses_constructed_objects::<PerThread>();
}

#[test]
fn magazines_swap_and_trade_with_the_depot() {
    // Tiny ladder: the cache starts with 1-round magazines.
    let (c, stamp) = tiny::<Global>("exchange", CacheConfig::default());
    assert_eq!(c.magazine_size(), 1);
    let objs = alloc_n(&c, 6);
    assert_eq!(c.stats().slab.sl_alloc, 6);
    free_all(&c, &objs);
    let s = c.stats();
    // Loaded + previous hold one each; the other four sit in full
    // magazines in the depot.
    assert_eq!(
        (s.cpu_rounds, s.cpu_prounds, s.depot_full),
        (1, 1, 4),
        "{s:?}"
    );
    assert_eq!(s.cached_objs, 6);
    check_balance(&c, &stamp, 0);
    // Allocating them again never touches the layer beneath.
    let again: HashSet<_> = alloc_n(&c, 6).into_iter().collect();
    assert_eq!(again, objs.iter().copied().collect::<HashSet<_>>());
    let s = c.stats();
    assert_eq!(s.slab.sl_alloc, 6, "all six came from magazines");
    assert_eq!(s.depot_full, 0);
    assert_eq!(s.depot_empty, 4, "empties traded back to the depot: {s:?}");
    assert_eq!(s.cpu_alloc, 6);
    assert_eq!(s.cpu_free, 6);
    free_all(&c, &again.into_iter().collect::<Vec<_>>());
    check_balance(&c, &stamp, 0);
}

#[test]
fn batch_alloc_takes_two_magazines_when_asked_for_more_than_one() {
    let (c, stamp) = tiny::<Global>("batch", CacheConfig::default());
    let objs = alloc_n(&c, 8);
    // SAFETY: all from `c`, distinct.
    unsafe { c.free_batch(&objs) };
    let before = c.stats();
    assert_eq!(before.cached_objs, 8);
    let mut out = [MaybeUninit::uninit(); 5];
    assert_eq!(c.alloc_batch(&mut out, AllocFlags::NoSleep), 5);
    // SAFETY: `alloc_batch` initialised all five.
    let got: Vec<NonNull<u8>> = out.iter().map(|o| unsafe { o.assume_init() }).collect();
    let set: HashSet<_> = got.iter().collect();
    assert_eq!(set.len(), 5, "distinct");
    let after = c.stats();
    assert_eq!(after.slab.sl_alloc, 8, "served from magazines");
    assert!(after.depot_full_alloc > before.depot_full_alloc);
    // A batch larger than everything cached spills to the layer beneath.
    let mut big = vec![MaybeUninit::uninit(); 10];
    assert_eq!(c.alloc_batch(&mut big, AllocFlags::NoSleep), 10);
    // SAFETY: `alloc_batch` initialised all ten.
    let big: Vec<NonNull<u8>> = big.iter().map(|o| unsafe { o.assume_init() }).collect();
    assert_eq!(c.stats().slab.sl_alloc, 8 + 7, "three cached, seven new");
    for o in got.iter().chain(&big) {
        assert_eq!(word(*o), MAGIC);
    }
    // SAFETY: all from `c`, distinct.
    unsafe { c.free_batch(&got) };
    // SAFETY: as above.
    unsafe { c.free_batch(&big) };
    check_balance(&c, &stamp, 0);
}

#[test]
fn no_magazines_mode_goes_straight_to_the_layer() {
    let (c, stamp) = tiny::<PerCpu>("nomag", CacheConfig::default().no_magazines(true));
    assert_eq!(c.magazine_size(), 0);
    let objs = alloc_n(&c, 3);
    free_all(&c, &objs);
    let s = c.stats();
    assert_eq!(s.cached_objs, 0);
    assert_eq!(s.cpu_mag_size, 0);
    assert_eq!(stamp.dtors(), 3, "each free destructed");
    assert_eq!(c.layer().live(), 0);
}

#[test]
fn free_nocache_bypasses_the_magazines() {
    let (c, stamp) = tiny::<Global>("nocache", CacheConfig::default());
    let a = c.alloc().unwrap();
    // SAFETY: from `c`.
    unsafe { c.free_nocache(a) };
    assert_eq!(stamp.dtors(), 1);
    assert_eq!(c.stats().cached_objs, 0);
    assert!(!c.layer().is_live(a.as_ptr()));
}

#[test]
fn reap_returns_depot_magazines_outside_the_working_set() {
    let (c, stamp) = tiny::<Global>("reap", CacheConfig::default());
    let objs = alloc_n(&c, 10);
    free_all(&c, &objs); // 1 + 1 in the slot, 8 full magazines in the depot
    assert_eq!(c.stats().depot_full, 8);
    c.update(); // interval 1 starts
                // Use three full magazines' worth during interval 1 (the slot's two
                // objects first, then three magazines), then give them back.
    let used = alloc_n(&c, 5);
    free_all(&c, &used);
    c.update(); // 5 full magazines sat untouched for the whole interval
    let before = c.stats();
    c.reclaim(false);
    let after = c.stats();
    assert_eq!(
        after.depot_full,
        before.depot_full - 5,
        "{before:?} -> {after:?}"
    );
    assert_eq!(after.cpu_mag_reap, before.cpu_mag_reap + 1);
    assert_eq!(stamp.dtors(), 5, "reaped objects were destructed");
    assert_eq!(
        stamp.reclaims.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "owner's reclaim ran"
    );
    // A second reap in the same interval keeps the working set.
    c.reclaim(false);
    assert_eq!(c.stats().depot_full, after.depot_full);
    check_balance(&c, &stamp, 0);
    // reap_now (no purge) zeroes the working set: the whole depot and the
    // previous magazine go.
    c.reap_now(false);
    let s = c.stats();
    assert_eq!(
        (s.depot_full, s.depot_empty, s.cpu_prounds),
        (0, 0, 0),
        "{s:?}"
    );
    assert!(s.depot_ws_zero >= 1);
    check_balance(&c, &stamp, 0);
}

#[test]
fn purge_then_reenable_keeps_working() {
    let (c, stamp) = tiny::<PerCpu>("purge", CacheConfig::default());
    for round in 0..3 {
        let objs = alloc_n(&c, 7);
        free_all(&c, &objs);
        c.purge();
        let s = c.stats();
        assert_eq!(s.cached_objs, 0, "round {round}: {s:?}");
        assert_eq!(c.layer().live(), 0);
        assert_eq!(s.cpu_mag_size, 1, "re-enabled at the same size");
    }
    assert_eq!(c.stats().cpu_mag_purge, 3);
    assert_eq!(stamp.ctors(), stamp.dtors());
}

#[test]
fn per_thread_magazines_go_to_the_depot_when_the_thread_exits() {
    let stamp = Arc::new(Stamp::default());
    let c: Cache<Layer, PerThread, TinyLadder> = Cache::new(
        layer("exit", &stamp),
        CacheConfig::default().register(false),
    )
    .unwrap();
    // `join` waits for the thread's TLS destructors (the exit hook); the end
    // of a `thread::scope` does not.
    let c2 = c.clone();
    std::thread::spawn(move || {
        let objs = alloc_n(&c2, 4);
        free_all(&c2, &objs);
        let st = c2.stats();
        assert_eq!(st.cpu_rounds + st.cpu_prounds, 2);
    })
    .join()
    .unwrap();
    let s = c.stats();
    assert_eq!(
        s.cpu_rounds + s.cpu_prounds,
        0,
        "the thread's slot is gone: {s:?}"
    );
    assert_eq!(s.depot_full, 4, "its magazines joined the depot");
    assert_eq!(s.cpu_alloc, 0);
    assert_eq!(s.cpu_free, 4, "its counters were kept");
    // This thread now allocates them from the depot without the layer.
    let objs = alloc_n(&c, 4);
    assert_eq!(c.stats().slab.sl_alloc, 4);
    free_all(&c, &objs);
    drop(c);
    assert_eq!(
        stamp.ctors(),
        stamp.dtors(),
        "dropping the cache destructs everything"
    );
}

#[test]
fn dropping_a_cache_returns_everything() {
    let stamp = Arc::new(Stamp::default());
    let c: Cache<Layer, PerCpu, SeedLadder> =
        Cache::new(layer("drop", &stamp), CacheConfig::default()).unwrap();
    let objs = alloc_n(&c, 100);
    free_all(&c, &objs);
    assert_eq!(stamp.dtors(), 0);
    drop(c);
    assert_eq!(stamp.dtors(), 100);
}

#[test]
fn exhausted_layer_reports_and_recovers() {
    let stamp = Arc::new(Stamp::default());
    let l = layer("limit", &stamp).with_limit(3);
    let c: Cache<Layer, Global, TinyLadder> =
        Cache::new(l, CacheConfig::default().register(false)).unwrap();
    let objs = alloc_n(&c, 3);
    assert!(c.alloc().is_none());
    let err = c.alloc_with(AllocFlags::NoSleep).unwrap_err();
    assert!(err.is_exhaustion(), "{err}");
    // SAFETY: from `c`.
    unsafe { c.free(objs[0]) };
    assert_eq!(
        c.alloc(),
        Some(objs[0]),
        "the freed object is cached and comes back"
    );
    free_all(&c, &objs);
}

#[test]
fn registry_lists_live_caches_and_serialises_stats() {
    let stamp = Arc::new(Stamp::default());
    let c: Cache<Layer, Global> =
        Cache::new(layer("registry-listed", &stamp), CacheConfig::default()).unwrap();
    let a = c.alloc().unwrap();
    // SAFETY: from `c`.
    unsafe { c.free(a) };
    let listed = all_stats();
    let mine = listed
        .iter()
        .find(|s| s.name == "registry-listed")
        .expect("listed");
    assert_eq!(mine.locality, "global");
    assert_eq!(mine.cached_objs, 1);
    let json = serde_json::to_string(mine).unwrap();
    assert!(json.contains("\"cpu_mag_size\":62"), "{json}");
    drop(c);
    assert!(all_stats().iter().all(|s| s.name != "registry-listed"));
}

#[test]
fn bad_layer_geometry_is_refused() {
    struct Weird(HeapObjects);
    // SAFETY: forwards to `HeapObjects` except for a chunk size smaller than
    // the object, which `Cache::new` must refuse before using anything.
    unsafe impl skmem_magazine::ObjectLayer for Weird {
        fn name(&self) -> &str {
            "weird"
        }
        fn obj_size(&self) -> usize {
            64
        }
        fn obj_align(&self) -> usize {
            8
        }
        fn chunk_size(&self) -> usize {
            32
        }
        fn alloc_with(&self, f: AllocFlags) -> skmem_magazine::Result<NonNull<u8>> {
            self.0.alloc_with(f)
        }
        fn alloc_batch(&self, out: &mut [MaybeUninit<NonNull<u8>>], f: AllocFlags) -> usize {
            self.0.alloc_batch(out, f)
        }
        unsafe fn free(&self, obj: NonNull<u8>) {
            // SAFETY: forwarded.
            unsafe { self.0.free(obj) }
        }
        unsafe fn free_batch(&self, objs: &[NonNull<u8>]) {
            // SAFETY: forwarded.
            unsafe { self.0.free_batch(objs) }
        }
        fn reap(&self) {}
        fn reclaim(&self) {}
        fn stats(&self) -> skmem_traits::stats::SlabStats {
            self.0.stats()
        }
    }
    let err = Cache::<Weird, Global>::new(
        Weird(HeapObjects::new("w", 64, 8).unwrap()),
        CacheConfig::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("chunk_size"), "{err}");
}

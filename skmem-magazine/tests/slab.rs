//! The magazine cache on the real slab layer: typed cache, allocator
//! front door, and region exhaustion asking the cache to reap.

mod common;

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use allocator_api2::alloc::{Allocator, Layout};
use allocator_api2::boxed::Box as ABox;
use allocator_api2::vec::Vec as AVec;
use skmem_magazine::{
    magazine_max_objs, AllocFlags, Cache, CacheAllocator, CacheConfig, CachedBox, Global, PerCpu,
    PerThread, TypedCache,
};
use skmem_slab::{Heap, HeapConfig};
use skmem_slab::{Region, RegionParams, SlabCache, SlabConfig};
use skmem_traits::NoCtor;

type RawCache<L> = Cache<SlabCache<Heap>, L>;
type RawAlloc<L> = CacheAllocator<SlabCache<Heap>, L>;

fn raw_cache<L: skmem_traits::CpuLocal>(name: &str, size: usize, count: usize) -> RawCache<L> {
    let params = RegionParams::new(name, size, count)
        .magazine_max_objs(magazine_max_objs(size.max(64), L::slot_hint()));
    let region = Region::<Heap>::new(params, HeapConfig::default()).unwrap();
    let slab = SlabCache::new(region, SlabConfig::new(name, size), NoCtor).unwrap();
    Cache::new(slab, CacheConfig::default().register(false)).unwrap()
}

static BUILT: AtomicUsize = AtomicUsize::new(0);
static DROPPED: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug)]
struct Conn {
    id: usize,
    buf: Vec<u8>,
    uses: u32,
}

impl Conn {
    fn new() -> Self {
        Conn {
            id: BUILT.fetch_add(1, Ordering::Relaxed),
            buf: Vec::with_capacity(256),
            uses: 0,
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn typed_cache_hands_back_constructed_objects() {
    let cache: TypedCache<Conn, _> = TypedCache::with_ctor("conns", 64, Conn::new).unwrap();
    let built0 = BUILT.load(Ordering::Relaxed);
    let first_id;
    {
        let mut c = cache.alloc().unwrap();
        first_id = c.id;
        c.uses += 1;
        c.buf.extend_from_slice(b"hello");
        c.buf.clear();
    }
    let c = cache.alloc().unwrap();
    assert_eq!(c.id, first_id, "same object again");
    assert_eq!(c.uses, 1, "state survives in the magazine");
    assert!(c.buf.capacity() >= 256, "the Vec kept its allocation");
    assert_eq!(BUILT.load(Ordering::Relaxed), built0 + 1, "built once");
    let dropped0 = DROPPED.load(Ordering::Relaxed);
    drop(c);
    assert_eq!(
        DROPPED.load(Ordering::Relaxed),
        dropped0,
        "freeing to the cache does not drop T"
    );
    cache.cache().purge();
    assert_eq!(
        DROPPED.load(Ordering::Relaxed),
        dropped0 + 1,
        "purge drops T"
    );
    let s = cache.stats();
    assert_eq!(s.slab.ctor, s.slab.dtor);
}

#[test]
fn typed_cache_from_default_and_free_nocache() {
    type Arrays = TypedCache<[u64; 4], fn() -> [u64; 4], Heap, Global>;
    let cache: Arrays = TypedCache::new("arrays", 8).unwrap();
    let mut a = cache.alloc().unwrap();
    a[0] = 42;
    CachedBox::free_nocache(a);
    let s = cache.stats();
    assert_eq!((s.cached_objs, s.slab.dtor), (0, 1));
    let b = cache.alloc().unwrap();
    assert_eq!(*b, [0; 4], "a fresh default, not the old contents");
    let raw = CachedBox::into_raw(b);
    // SAFETY: `raw` came from `into_raw` on this cache.
    let b = unsafe { CachedBox::from_raw(&cache, raw) };
    drop(b);
    assert_eq!(cache.stats().cached_objs, 1);
}

#[test]
fn typed_cache_resumes_a_constructor_panic() {
    let fail = Arc::new(AtomicUsize::new(1));
    let f = fail.clone();
    let cache: TypedCache<u64, _> = TypedCache::with_ctor("panicky", 8, move || {
        if f.fetch_sub(1, Ordering::Relaxed) == 1 {
            panic!("constructor refused");
        }
        7u64
    })
    .unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cache.alloc().map(|b| *b)));
    let msg = r.unwrap_err();
    assert_eq!(msg.downcast_ref::<&str>(), Some(&"constructor refused"));
    // The cache is intact and the next construction works.
    assert_eq!(*cache.alloc().unwrap(), 7);
    let s = cache.stats();
    assert_eq!(s.slab.sl_bufinuse, 1, "the failed object went back: {s:?}");
}

#[test]
fn typed_boxes_cross_threads() {
    type Vecs = TypedCache<Vec<u32>, fn() -> Vec<u32>, Heap, PerThread>;
    let cache: Vecs = TypedCache::new("xthread", 256).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let producer = s.spawn(|| {
            for i in 0..100u32 {
                let mut b = cache.alloc().unwrap();
                b.clear();
                b.push(i);
                tx.send(b).unwrap();
            }
            drop(tx);
        });
        let consumer = s.spawn(|| {
            let mut sum = 0;
            for b in rx {
                sum += b[0];
            }
            assert_eq!(sum, (0..100).sum());
        });
        // Explicit joins wait for the threads' exit hooks (their magazines
        // go to the depot there).
        producer.join().unwrap();
        consumer.join().unwrap();
    });
    let s = cache.stats();
    assert_eq!(
        s.slab.sl_bufinuse, s.cached_objs,
        "everything came back: {s:?}"
    );
}

#[test]
fn allocator_serves_fitting_layouts_and_refuses_others() {
    let cache = raw_cache::<PerCpu>("alloc-api", 64, 256);
    let cache = cache.allocator().unwrap();
    let block = cache.allocate(Layout::new::<[u8; 64]>()).unwrap();
    assert_eq!(block.len(), 64);
    // SAFETY: allocated above with this layout.
    unsafe { cache.deallocate(block.cast(), Layout::new::<[u8; 64]>()) };
    assert!(cache.allocate(Layout::new::<[u8; 65]>()).is_err());
    assert!(cache
        .allocate(Layout::from_size_align(8, 128).unwrap())
        .is_err());
    // Vec grows in place up to the object size, then fails cleanly.
    let mut v: AVec<u32, &RawAlloc<PerCpu>> = AVec::with_capacity_in(4, &cache);
    v.extend(0..16);
    assert_eq!(v.iter().sum::<u32>(), 120);
    assert!(v.try_reserve(1).is_err(), "17 u32 do not fit 64 bytes");
    assert_eq!(v.len(), 16);
    let b = ABox::new_in([7u64; 8], &cache);
    assert_eq!(b.iter().sum::<u64>(), 56);
    let zeroed = cache.allocate_zeroed(Layout::new::<[u8; 64]>()).unwrap();
    // SAFETY: 64 initialised bytes just allocated.
    assert!(unsafe { zeroed.as_ref() }.iter().all(|&x| x == 0));
    // SAFETY: allocated above with this layout.
    unsafe { cache.deallocate(zeroed.cast(), Layout::new::<[u8; 64]>()) };
    drop(v);
    drop(b);
    cache.cache().purge();
    assert_eq!(cache.cache().stats().slab.sl_bufinuse, 0);
}

#[test]
fn hashbrown_map_in_a_cache() {
    let cache = raw_cache::<Global>("map", 4096, 16);
    let alloc = cache.allocator().unwrap();
    let mut m: hashbrown::HashMap<u32, u64, _, &RawAlloc<Global>> =
        hashbrown::HashMap::with_hasher_in(hashbrown::DefaultHashBuilder::default(), &alloc);
    for i in 0..100 {
        m.insert(i, u64::from(i) * 3);
    }
    assert_eq!(m[&33], 99);
    assert!(
        m.try_reserve(10_000).is_err(),
        "a table larger than an object is refused"
    );
    assert_eq!(m.len(), 100);
}

#[test]
fn region_exhaustion_asks_the_cache_to_reap() {
    // Two slab caches on one region of 2 segments: the first fills the
    // region and parks everything in its magazines; the second then needs a
    // segment, and the region gets it back by asking the first to reap.
    let params = RegionParams::new("shared-region", 64, 128).seg_size(4096);
    let region = Region::<Heap>::new(params, HeapConfig::default()).unwrap();
    let segs = region.layout().seg_count;
    let per_seg = region.layout().objs_per_seg as usize;
    let first = Cache::<_, Global>::new(
        SlabCache::new(region.clone(), SlabConfig::new("first", 64), NoCtor).unwrap(),
        CacheConfig::default().register(false),
    )
    .unwrap();
    let second = SlabCache::new(region.clone(), SlabConfig::new("second", 64), NoCtor).unwrap();
    let all = segs as usize * per_seg;
    let mut objs = vec![MaybeUninit::uninit(); all];
    assert_eq!(first.alloc_batch(&mut objs, AllocFlags::NoSleep), all);
    // SAFETY: `alloc_batch` initialised every element.
    let objs: Vec<_> = objs.iter().map(|o| unsafe { o.assume_init() }).collect();
    assert!(first.alloc().is_none(), "region exhausted");
    // SAFETY: every object came from `first`.
    unsafe { first.free_batch(&objs) };
    assert_eq!(first.stats().cached_objs, all as u64);
    assert_eq!(region.stats().seginuse, u64::from(segs));
    let obj = second
        .alloc_with(AllocFlags::NoSleep)
        .expect("the reap freed a segment");
    let s = first.stats();
    assert_eq!(s.cached_objs, 0, "the first cache purged: {s:?}");
    assert!(s.cpu_mag_purge >= 1);
    // SAFETY: from `second`.
    unsafe { second.free(obj) };
}

#[test]
fn cache_over_slab_counts_add_up() {
    let cache = raw_cache::<PerThread>("counts", 128, 1000);
    let layer = cache.layer();
    let mut out = vec![MaybeUninit::uninit(); 300];
    assert_eq!(cache.alloc_batch(&mut out, AllocFlags::NoSleep), 300);
    // SAFETY: `alloc_batch` initialised every element.
    let objs: Vec<_> = out.iter().map(|o| unsafe { o.assume_init() }).collect();
    // SAFETY: all from `cache`, distinct.
    unsafe { cache.free_batch(&objs[..200]) };
    for &o in &objs[200..] {
        // SAFETY: as above.
        unsafe { cache.free_nocache(o) };
    }
    let s = cache.stats();
    assert_eq!(s.slab.sl_bufinuse, s.cached_objs);
    assert_eq!(s.cached_objs, 200);
    assert_eq!(layer.stats().sl_alloc, 300);
    cache.reap_now(true);
    assert_eq!(cache.stats().slab.sl_bufinuse, 0);
}

#[test]
fn zero_sized_box_never_reaches_a_magazine() {
    let cache = raw_cache::<Global>("zst", 64, 64);
    let alloc = cache.allocator().unwrap();
    let region = cache.layer().region().clone();
    let in_region = |p: *const u8| region.segment_of(p).is_some();
    let before = cache.stats();
    // allocator-api2 asks for and gives back zero-sized blocks here.
    drop(ABox::new_in((), &alloc));
    let empty: AVec<u64, &RawAlloc<Global>> = AVec::new_in(&alloc);
    drop(empty.into_boxed_slice());
    let zst = Layout::from_size_align(0, 32).unwrap();
    let block = alloc.allocate(zst).unwrap();
    assert_eq!(block.len(), 0);
    assert_eq!(block.cast::<u8>().as_ptr() as usize % 32, 0);
    // SAFETY: allocated above with this layout.
    unsafe { alloc.deallocate(block.cast(), zst) };
    let after = cache.stats();
    assert_eq!(
        (after.cpu_alloc, after.cpu_free, after.slab.sl_alloc),
        (before.cpu_alloc, before.cpu_free, before.slab.sl_alloc),
        "a zero-sized request touched the cache"
    );
    // Every object handed out afterwards is a real object of the region.
    let count = region.layout().obj_count;
    let objs: Vec<_> = (0..count)
        .map(|_| cache.alloc().expect("the region's objects"))
        .collect();
    for &o in &objs {
        assert!(in_region(o.as_ptr()), "{o:p} is not an object of the cache");
    }
    assert!(cache.alloc().is_none(), "exactly the region's objects");
    for &o in &objs {
        // SAFETY: allocated above, freed once.
        unsafe { cache.free(o) };
    }
    // Growing from and shrinking to zero allocate and free real objects.
    let mut v: AVec<u8, &RawAlloc<Global>> = AVec::new_in(&alloc);
    v.push(1);
    assert!(in_region(v.as_ptr()));
    let out = cache.stats().slab.sl_bufinuse;
    v.clear();
    v.shrink_to_fit();
    assert_eq!(v.capacity(), 0);
    drop(v);
    cache.purge();
    assert!(out >= 1);
    assert_eq!(cache.stats().slab.sl_bufinuse, 0, "everything came back");
}

#[test]
fn nosleep_alloc_sees_objects_the_region_reap_returned() {
    // This thread holds half the region's objects; the other half rests in
    // another thread's magazines. An allocation here finds the slab empty
    // and the region exhausted; the region's reap purges the other thread's
    // magazines back into the (partial) slab, which frees no segment, and
    // the allocation must take those objects rather than fail.
    // One segment of 64 objects, no allowance for magazines.
    let params = RegionParams::new("reap-refill", 64, 64).seg_size(4096);
    let region = Region::<Heap>::new(params, HeapConfig::default()).unwrap();
    let count = region.layout().obj_count;
    assert_eq!((count, region.layout().seg_count), (64, 1));
    let slab = SlabCache::new(region, SlabConfig::new("reap-refill", 64), NoCtor).unwrap();
    let cache: RawCache<PerThread> =
        Cache::new(slab, CacheConfig::default().register(false)).unwrap();
    let mut held: Vec<_> = (0..count / 2)
        .map(|_| cache.alloc_with(AllocFlags::NoSleep).unwrap())
        .collect();
    let (parked_tx, parked_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let other = cache.clone();
    let holder = std::thread::spawn(move || {
        let objs: Vec<_> = (0..count / 2)
            .map(|_| other.alloc_with(AllocFlags::NoSleep).unwrap())
            .collect();
        for o in objs {
            // SAFETY: allocated above, freed once.
            unsafe { other.free(o) };
        }
        parked_tx.send(other.stats()).unwrap();
        // Stay alive so the magazines stay in this thread's slot.
        let _ = done_rx.recv();
    });
    let parked = parked_rx.recv().unwrap();
    assert_eq!(parked.cached_objs, (count / 2) as u64, "{parked:?}");
    for i in count / 2..count {
        match cache.alloc_with(AllocFlags::NoSleep) {
            Ok(o) => held.push(o),
            Err(e) => panic!("allocation {} of {count} failed: {e}", i + 1),
        }
    }
    assert!(
        cache.alloc_with(AllocFlags::NoSleep).is_err(),
        "all {count} are out"
    );
    done_tx.send(()).unwrap();
    holder.join().unwrap();
    for o in held {
        // SAFETY: allocated above, freed once.
        unsafe { cache.free(o) };
    }
    cache.purge();
    assert_eq!(cache.stats().slab.sl_bufinuse, 0);
}

#[test]
fn allocator_refuses_memory_that_is_not_plain_private() {
    use skmem_traits::{Error, RegionMode};
    let cache_in = |name: &str, mode: RegionMode| {
        let params = RegionParams::new(name, 64, 64).mode(mode);
        let region = Region::<Heap>::new(params, HeapConfig::default()).unwrap();
        let slab = SlabCache::new(region, SlabConfig::new(name, 64), NoCtor).unwrap();
        Cache::<_, Global>::new(slab, CacheConfig::default().register(false)).unwrap()
    };
    for (name, mode, says) in [
        ("ro-owner", RegionMode::KREADONLY, "KREADONLY"),
        ("peer-maps", RegionMode::MMAPOK, "MMAPOK"),
        ("peer-shares", RegionMode::SHAREOK, "SHAREOK"),
        (
            "peer-reads",
            RegionMode::MMAPOK | RegionMode::UREADONLY,
            "MMAPOK",
        ),
    ] {
        let cache = cache_in(name, mode);
        match cache.allocator() {
            Err(Error::Invalid { field, reason }) => {
                assert_eq!(field, "mode");
                assert!(
                    reason.contains(name) && reason.contains(says),
                    "{name}: the error names the region and its mode: {reason}"
                );
            }
            other => panic!("{name} ({mode:?}): expected Invalid(mode), got {other:?}"),
        }
        // The cache itself stays usable through its own (unsafe) API.
        let obj = cache.alloc().unwrap();
        // SAFETY: allocated above, freed once.
        unsafe { cache.free(obj) };
    }
    let plain = cache_in("plain", RegionMode::empty());
    let alloc = plain
        .allocator()
        .expect("a private heap region is plain memory");
    let b = ABox::new_in(7u64, &alloc);
    assert_eq!(*b, 7);
}

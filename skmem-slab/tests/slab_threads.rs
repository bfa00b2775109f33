//! Two threads hammering one slab cache, with invariant checks along the way.

mod slab_common;

use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

use skmem_backends::{Heap, HeapConfig};
use skmem_slab::{Region, RegionParams, SlabCache, SlabConfig};
use skmem_traits::{AllocFlags, Error, NoCtor, RegionMode, SegmentSource};

use slab_common::*;

const ITERS: usize = if cfg!(miri) { 150 } else { 20_000 };

/// Tiny xorshift so the test needs no RNG crate and stays deterministic.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Raw object address that may cross threads (the test owns the object).
#[derive(Clone, Copy)]
struct Owned(NonNull<u8>);
// SAFETY: the object is exclusively owned by whichever thread holds it.
unsafe impl Send for Owned {}

fn hammer<S: SegmentSource>(region: Arc<Region<S>>) {
    let cache = Arc::new(
        SlabCache::new(
            region.clone(),
            SlabConfig::new("hammer", 64).clear_on_free(true),
            CheckingCtor::default(),
        )
        .unwrap(),
    );
    let capacity = region.layout().obj_count;
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let cache = cache.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9 + t * 7919);
                let mut mine: Vec<(Owned, u64)> = Vec::new();
                barrier.wait();
                for i in 0..ITERS {
                    let tag = (t << 56) | i as u64;
                    match rng.next() % 8 {
                        0..=2 => match cache.alloc_with(AllocFlags::NoSleep) {
                            Ok(p) => {
                                // SAFETY: ours, 64 bytes.
                                unsafe { p.as_ptr().cast::<u64>().write_unaligned(tag) };
                                mine.push((Owned(p), tag));
                            }
                            Err(e) => assert!(matches!(e, Error::Exhausted { .. }), "{e}"),
                        },
                        3 => {
                            let mut out = [MaybeUninit::uninit(); 8];
                            let n = cache.alloc_batch(&mut out, AllocFlags::NoSleep);
                            for slot in &out[..n] {
                                // SAFETY: initialised by alloc_batch.
                                let p = unsafe { slot.assume_init() };
                                // SAFETY: ours, 64 bytes.
                                unsafe { p.as_ptr().cast::<u64>().write_unaligned(tag) };
                                mine.push((Owned(p), tag));
                            }
                        }
                        4..=5 if !mine.is_empty() => {
                            let k = rng.next() as usize % mine.len();
                            let (Owned(p), tag) = mine.swap_remove(k);
                            // SAFETY: ours, 64 bytes; nobody else writes it.
                            assert_eq!(unsafe { p.as_ptr().cast::<u64>().read_unaligned() }, tag);
                            let info = cache.object_info(p.as_ptr()).unwrap();
                            assert_eq!(info.addr, p);
                            // SAFETY: ours, freed once.
                            unsafe { cache.free(p) };
                        }
                        6 if !mine.is_empty() => {
                            let n = (rng.next() as usize % 8).min(mine.len());
                            let batch: Vec<NonNull<u8>> = mine
                                .drain(..n)
                                .map(|(Owned(p), tag)| {
                                    // SAFETY: ours, 64 bytes.
                                    let seen = unsafe { p.as_ptr().cast::<u64>().read_unaligned() };
                                    assert_eq!(seen, tag);
                                    p
                                })
                                .collect();
                            // SAFETY: ours, freed once.
                            unsafe { cache.free_batch(&batch) };
                        }
                        _ => {
                            if i % 16 == 0 {
                                cache.check_invariants().unwrap();
                                let s = cache.stats();
                                assert_eq!(s.sl_alloc - s.sl_free, s.sl_bufinuse);
                                assert!(s.sl_bufinuse as usize <= capacity);
                            }
                            if i % 64 == 0 {
                                cache.reap();
                            }
                        }
                    }
                }
                for (Owned(p), tag) in &mine {
                    // SAFETY: ours.
                    assert_eq!(unsafe { p.as_ptr().cast::<u64>().read_unaligned() }, *tag);
                }
                mine.into_iter().map(|(o, _)| o).collect::<Vec<_>>()
            })
        })
        .collect();
    let leftovers: Vec<NonNull<u8>> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .map(|Owned(p)| p)
        .collect();
    let s = cache.stats();
    assert_eq!(s.sl_bufinuse as usize, leftovers.len());
    assert_eq!(cache.ctor().live_count(), leftovers.len());
    // SAFETY: every leftover object, freed once.
    unsafe { cache.free_batch(&leftovers) };
    cache.reap();
    cache.check_invariants().unwrap();
    let s = cache.stats();
    assert_eq!((s.sl_bufinuse, s.sl_alloc - s.sl_free), (0, 0));
    assert_eq!(s.ctor, s.dtor);
    assert_eq!(s.sl_create, s.sl_destroy);
    assert!(
        s.sl_alloc > 0 && s.sl_create > 1,
        "the test did not exercise growth"
    );
    assert_eq!(region.segments_in_use(), 0);
}

fn params(name: &str) -> RegionParams {
    // 4 KiB slabs of 64 objects, 512 objects in all: both threads run into
    // exhaustion and slab turnover.
    let count = if cfg!(miri) { 192 } else { 512 };
    RegionParams::new(name, 64, count)
        .seg_size(4096)
        .mode(RegionMode::NOMAGAZINES)
}

#[test]
fn two_threads_heap() {
    hammer(Region::<Heap>::new(params("threads-heap"), HeapConfig::default()).unwrap());
}

#[cfg(all(target_os = "linux", not(miri)))]
#[test]
fn two_threads_mmap() {
    use skmem_backends::{Mmap, MmapConfig};
    hammer(Region::<Mmap>::new(params("threads-mmap"), MmapConfig::default()).unwrap());
}

fn one_thread_alloc<S: SegmentSource>(
    cache: &Arc<SlabCache<S, NoCtor>>,
) -> (std::thread::JoinHandle<()>, mpsc::Receiver<Owned>) {
    let (tx, rx) = mpsc::channel();
    let c = cache.clone();
    let handle = std::thread::spawn(move || {
        let p = c.alloc_with(AllocFlags::Sleep).unwrap();
        tx.send(Owned(p)).unwrap();
    });
    (handle, rx)
}

/// A sleeping allocation on an exhausted region is served by an object
/// freed to the cache (not a whole segment freed to the region).
#[test]
fn sleeping_alloc_wakes_on_object_free() {
    let params = RegionParams::new("sleep", 64, 64)
        .seg_size(4096)
        .mode(RegionMode::NOMAGAZINES | RegionMode::MONOLITHIC);
    let region = Region::<Heap>::new(params, HeapConfig::default()).unwrap();
    let cache = Arc::new(SlabCache::new(region, SlabConfig::new("sleep", 64), NoCtor).unwrap());
    let objs: Vec<_> = (0..64)
        .map(|_| cache.alloc_with(AllocFlags::NoSleep).unwrap())
        .collect();
    assert!(matches!(
        cache.alloc_with(AllocFlags::FailOk),
        Err(Error::Exhausted { .. })
    ));
    let before = cache.region().stats();
    let (handle, rx) = one_thread_alloc(&cache);
    // Free only once the sleeper has found the region exhausted (it failed
    // a segment allocation there, or is blocked inside the region).
    while {
        let now = cache.region().stats();
        now.alloc_fail == before.alloc_fail && now.waits == before.waits
    } {
        std::thread::yield_now();
    }
    // SAFETY: ours, freed once.
    unsafe { cache.free(objs[17]) };
    let Owned(got) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the sleeping allocation was not woken by the free");
    handle.join().unwrap();
    assert_eq!(got, objs[17]);
    let s = cache.stats();
    assert_eq!((s.sl_bufinuse, s.sl_alloc_fail), (64, 1));
    // SAFETY: all 64 are ours again, freed once.
    unsafe { cache.free_batch(&objs) };
    cache.reap();
    assert_eq!(cache.region().segments_in_use(), 0);
}

/// A sleeping allocation also notices a segment that another cache of the
/// same region gives back.
#[test]
fn sleeping_alloc_sees_segments_freed_by_another_cache() {
    let params = RegionParams::new("sleep2", 64, 128)
        .seg_size(4096)
        .mode(RegionMode::NOMAGAZINES);
    let region = Region::<Heap>::new(params, HeapConfig::default()).unwrap();
    let holder = SlabCache::new(region.clone(), SlabConfig::new("holder", 64), NoCtor).unwrap();
    let objs: Vec<_> = (0..128)
        .map(|_| holder.alloc_with(AllocFlags::NoSleep).unwrap())
        .collect();
    let waiter =
        Arc::new(SlabCache::new(region.clone(), SlabConfig::new("waiter", 64), NoCtor).unwrap());
    let (handle, rx) = one_thread_alloc(&waiter);
    // Empty both of the holder's slabs: one stays cached, the other goes
    // back to the region, where the waiter finds it.
    // SAFETY: ours, freed once.
    unsafe { holder.free_batch(&objs) };
    assert_eq!(holder.stats().sl_destroy, 1);
    let Owned(got) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the sleeping allocation never saw the freed segment");
    handle.join().unwrap();
    assert!(waiter.object_info(got.as_ptr()).is_some());
    // SAFETY: ours, freed once.
    unsafe { waiter.free(got) };
    waiter.reap();
    holder.reap();
    assert_eq!(region.segments_in_use(), 0);
}

/// `SleepFor` on an exhausted cache waits for a free (none comes) and then
/// fails with the region's `Exhausted`, counted once; a free within the
/// limit serves it like `Sleep`.
#[test]
fn sleep_for_on_an_exhausted_cache_fails_after_its_limit_or_takes_a_freed_object() {
    let params = RegionParams::new("bounded", 64, 64)
        .seg_size(4096)
        .mode(RegionMode::NOMAGAZINES | RegionMode::MONOLITHIC);
    let region = Region::<Heap>::new(params, HeapConfig::default()).unwrap();
    let cache = Arc::new(SlabCache::new(region, SlabConfig::new("bounded", 64), NoCtor).unwrap());
    let objs: Vec<_> = (0..64)
        .map(|_| cache.alloc_with(AllocFlags::NoSleep).unwrap())
        .collect();
    let limit = Duration::from_millis(30);
    let start = std::time::Instant::now();
    let err = cache.alloc_with(AllocFlags::SleepFor(limit)).unwrap_err();
    assert!(
        start.elapsed() >= limit,
        "gave up after {:?}",
        start.elapsed()
    );
    assert!(
        matches!(err, Error::Exhausted { ref name, capacity: 1, unit: "segments" } if name == "bounded"),
        "{err}"
    );
    assert_eq!(cache.stats().sl_alloc_fail, 1);

    let c = cache.clone();
    let handle = std::thread::spawn(move || {
        c.alloc_with(AllocFlags::SleepFor(Duration::from_secs(600)))
            .map(Owned)
    });
    let before = cache.region().stats();
    while {
        let now = cache.region().stats();
        now.alloc_fail == before.alloc_fail && now.waits == before.waits
    } {
        std::thread::yield_now();
    }
    // SAFETY: ours, freed once.
    unsafe { cache.free(objs[5]) };
    let Owned(got) = handle.join().unwrap().expect("served by the free");
    assert_eq!(got, objs[5]);
    assert_eq!(
        cache.stats().sl_alloc_fail,
        1,
        "the second call did not fail"
    );
    let mut all = objs.clone();
    all[5] = got;
    // SAFETY: all 64 are ours again, freed once.
    unsafe { cache.free_batch(&all) };
}

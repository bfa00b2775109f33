//! Stress of `PerCpu` on its rseq fronts (and, where rseq is unavailable,
//! of the locked fallback it then runs).
//!
//! Three generations of more threads than CPUs do single-object alloc and
//! free on one cache over a slab on a shared region; each hand-out takes
//! the object's first word from `MAGIC` to a unique tag with a
//! compare-exchange (so an object handed out twice fails at once), and each
//! free checks the tag and restores `MAGIC`. Half of what a thread holds is
//! freed by another thread; threads migrate every 2 000 operations
//! (`sched_setaffinity`) and exit at the end of their generation. Meanwhile
//! one thread purges, reaps and resizes the cache, and another keeps
//! creating, using (from two threads) and dropping a second cache on the
//! same region. At the end every segment is back (region `seginuse == 0`),
//! constructors and destructors balance, and, in rseq mode, the kernel
//! aborted critical sections during the run ([`rseq_aborts`]).

#![cfg(target_os = "linux")]

mod common;

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Stamp, MAGIC};
use skmem_magazine::local::{ncpus, rseq_aborts, rseq_mode};
use skmem_magazine::{Cache, CacheConfig, PerCpu, TinyLadder};
use skmem_slab::{Heap, HeapConfig};
use skmem_slab::{Region, RegionParams, SlabCache, SlabConfig};

/// Operations per worker thread.
const OPS: usize = 200_000;
/// Operations between two migrations of a worker.
const MIGRATE_EVERY: usize = 2_000;
/// Worker generations (each one's threads exit before the next starts).
const GENERATIONS: usize = 3;

type Region64 = Region<Heap>;
type TheCache = Cache<SlabCache<Heap, Arc<Stamp>>, PerCpu, TinyLadder>;

/// Takes `o` from `MAGIC` (free, constructed) to `tag`.
fn claim(o: NonNull<u8>, tag: u64) {
    // SAFETY: objects are 64 bytes, 64-aligned; the first word is only
    // accessed atomically while a bug could share the object.
    let w = unsafe { &*o.cast::<AtomicU64>().as_ptr() };
    if let Err(seen) = w.compare_exchange(MAGIC, tag, Ordering::AcqRel, Ordering::Relaxed) {
        panic!("{o:p} handed out while not free (word {seen:#x})");
    }
}

/// Checks `tag` and puts `MAGIC` back (the constructed state).
fn release(o: NonNull<u8>, tag: u64) {
    // SAFETY: as in `claim`.
    let w = unsafe { &*o.cast::<AtomicU64>().as_ptr() };
    assert_eq!(
        w.swap(MAGIC, Ordering::AcqRel),
        tag,
        "{o:p} changed while out"
    );
}

/// Raises the flag when dropped (normally or by unwinding).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[derive(Clone, Copy)]
struct Held(NonNull<u8>, u64);
// SAFETY: an address plus tag; whoever holds it owns the object.
unsafe impl Send for Held {}

/// Pins the calling thread to `cpu` (ignored when not allowed).
fn pin(cpu: usize) {
    // SAFETY: a zeroed `cpu_set_t` is a valid empty set; the call gets a
    // valid pointer and the set's size.
    unsafe {
        let mut one: libc::cpu_set_t = core::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        libc::sched_setaffinity(0, size_of_val(&one), &one);
    }
}

fn cache_on(region: &Arc<Region64>, name: &str, stamp: &Arc<Stamp>) -> TheCache {
    let slab = SlabCache::new(region.clone(), SlabConfig::new(name, 64), stamp.clone()).unwrap();
    Cache::new(slab, CacheConfig::default().register(false)).unwrap()
}

/// One worker: single allocs and frees, tags, cross-thread frees through
/// `pool`, a migration every `MIGRATE_EVERY` operations.
fn worker(
    cache: &TheCache,
    pool: &Mutex<Vec<Held>>,
    tags: &AtomicU64,
    t: usize,
    until: impl Fn() -> bool,
) {
    let cpus = ncpus();
    let mut mine: Vec<Held> = Vec::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (t as u64 * 0x1234_5679);
    let mut op = 0usize;
    while op < OPS || !until() {
        if op % MIGRATE_EVERY == 0 {
            pin((t + op / MIGRATE_EVERY) % cpus);
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        if mine.len() < 48 && rng % 8 < 5 {
            if let Some(o) = cache.alloc() {
                let tag = tags.fetch_add(1, Ordering::Relaxed) << 8 | 0x5a;
                claim(o, tag);
                mine.push(Held(o, tag));
            }
        } else if let Some(Held(o, tag)) = mine.pop() {
            release(o, tag);
            // SAFETY: `o` came from `cache`, is constructed again and is
            // not used after this.
            unsafe { cache.free(o) };
        }
        if op % 64 == 63 {
            // Hand half to whoever comes next; take what others left.
            let give = mine.len() / 2;
            let mut p = pool.lock().unwrap();
            p.extend(mine.drain(..give));
            // Keep the pool near 512 objects, so the region never runs dry.
            let k = p.len().min(16.max(p.len().saturating_sub(512)));
            let at = p.len() - k;
            mine.extend(p.drain(at..));
        }
        op += 1;
    }
    pool.lock().unwrap().extend(mine);
}

#[test]
fn per_cpu_rseq_stress() {
    let start = Instant::now();
    let aborts_before = rseq_aborts();
    let region = Region64::new(
        RegionParams::new("stress-rseq", 64, 60_000),
        HeapConfig::default(),
    )
    .unwrap();
    let stamp = Arc::new(Stamp::default());
    let cache = cache_on(&region, "stress-rseq", &stamp);
    let want = if rseq_mode() {
        "per-cpu(rseq)"
    } else {
        "per-cpu(locked)"
    };
    assert_eq!(cache.stats().locality, want);

    let pool: Mutex<Vec<Held>> = Mutex::new(Vec::new());
    let tags = AtomicU64::new(1);
    let stop = AtomicBool::new(false);
    let (mut maint_rounds, mut churns) = (0u64, (0u64, 0usize));
    std::thread::scope(|s| {
        // Purge, reap and resize while the workers run.
        let maint = s.spawn(|| {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match i % 5 {
                    0 => cache.purge(),
                    1 => cache.reap_now(false),
                    2 => cache.reap_now(true),
                    3 => cache.debug_resize(),
                    _ => {
                        let st = cache.stats();
                        assert_eq!(st.locality, want);
                    }
                }
                i += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
            i
        });
        // A second cache on the same region, created, used from two
        // threads (so that fronts of both CPUs fill) and dropped, again
        // and again.
        let churn = s.spawn(|| {
            let (mut n, mut used) = (0u64, 0usize);
            while !stop.load(Ordering::Relaxed) {
                let st2 = Arc::new(Stamp::default());
                let c2 = cache_on(&region, "stress-rseq-churn", &st2);
                used += std::thread::scope(|s2| {
                    let users: Vec<_> = (0..2)
                        .map(|t| {
                            let c2 = &c2;
                            s2.spawn(move || {
                                pin(t % ncpus());
                                let objs: Vec<_> = (0..40).filter_map(|_| c2.alloc()).collect();
                                for &o in &objs {
                                    // SAFETY: from `c2`, untouched, not used again.
                                    unsafe { c2.free(o) };
                                }
                                objs.len()
                            })
                        })
                        .collect();
                    users.into_iter().map(|u| u.join().unwrap()).sum::<usize>()
                });
                drop(c2);
                assert_eq!(
                    st2.ctors(),
                    st2.dtors(),
                    "a dropped cache destructs everything"
                );
                n += 1;
            }
            (n, used)
        });
        // A failing worker must not leave the helpers spinning (the scope
        // would wait for them forever): stop them on unwind too.
        let stop_helpers = StopOnDrop(&stop);
        let cpus = ncpus();
        let threads = 3 * cpus + 1;
        for generation in 0..GENERATIONS {
            let last = generation + 1 == GENERATIONS;
            let until = || {
                // The last generation keeps going until the kernel aborted a
                // section (rseq mode), bounded in time.
                !last
                    || !rseq_mode()
                    || rseq_aborts() > aborts_before
                    || start.elapsed() > Duration::from_secs(15)
            };
            std::thread::scope(|sw| {
                for t in 0..threads {
                    let (cache, pool, tags) = (&cache, &pool, &tags);
                    sw.spawn(move || worker(cache, pool, tags, generation * threads + t, until));
                }
            });
        }
        drop(stop_helpers);
        maint_rounds = maint.join().unwrap();
        churns = churn.join().unwrap();
    });

    for Held(o, tag) in pool.into_inner().unwrap() {
        release(o, tag);
        // SAFETY: from `cache`, constructed, not used again.
        unsafe { cache.free(o) };
    }
    let s = cache.stats();
    assert_eq!(s.slab.sl_bufinuse, s.cached_objs, "nothing out: {s:?}");
    assert_eq!(stamp.ctors() - stamp.dtors(), s.slab.sl_bufinuse);
    cache.reclaim(true);
    let s = cache.stats();
    assert_eq!(s.cached_objs, 0, "{s:?}");
    assert_eq!(s.slab.sl_bufinuse, 0, "{s:?}");
    assert_eq!(
        stamp.ctors(),
        stamp.dtors(),
        "constructors and destructors balance"
    );
    assert_eq!(
        region.stats().seginuse,
        0,
        "every segment back: {:?}",
        region.stats()
    );
    let aborts = rseq_aborts() - aborts_before;
    eprintln!(
        "mode {want}: {} hand-outs, {aborts} rseq aborts, {maint_rounds} maintenance rounds, {churns:?} caches churned (objects used), {:?}",
        tags.load(Ordering::Relaxed) - 1,
        start.elapsed()
    );
    assert!(maint_rounds > 5, "maintenance ran");
    let handouts = tags.load(Ordering::Relaxed) - 1;
    assert!(
        handouts as usize > GENERATIONS * OPS,
        "the workers allocated"
    );
    assert!(churns.0 > 0 && churns.1 > 0, "caches were churned and used");
    if rseq_mode() {
        assert!(aborts > 0, "no rseq critical section was aborted");
    } else {
        assert_eq!(aborts, 0);
    }
}

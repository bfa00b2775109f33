//! Stress of `PerThread`'s owner-only slots: more worker threads than CPUs
//! doing single alloc/free (a unique tag written into every live object and
//! checked on free), cross-thread frees through a shared pool, workers that
//! migrate between CPUs every few thousand operations (`sched_setaffinity`)
//! and exit mid-run (their exit hook flushing while others purge), while
//! other threads loop purge / reap_now / debug_resize and the cache itself
//! is dropped and recreated. At the end every segment is back in the region
//! and constructors and destructors balance.
//!
//! The test runs in the process's handshake mode (membarrier here) and, in
//! a child process with `SKMEM_MEMBARRIER=off`, in the locked fallback.
#![cfg(target_os = "linux")]

mod common;

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Stamp, MAGIC};
use skmem_magazine::local::owner_slot_backoffs;
use skmem_magazine::{per_thread_mode, Cache, CacheConfig, PerThread, TinyLadder};
use skmem_slab::{Heap, HeapConfig};
use skmem_slab::{Region, RegionParams, SlabCache, SlabConfig};

type Obj = Cache<SlabCache<Heap, Arc<Stamp>>, PerThread, TinyLadder>;

const RUN: Duration = Duration::from_secs(4);
/// Operations between migrations.
const MIGRATE_EVERY: u64 = 2_000;
/// Operations before a worker thread exits (and a fresh one replaces it).
const LIFETIME: u64 = 15_000;

/// An object out of its cache: which cache, where, and the tag in it.
struct Live {
    cache: Arc<Obj>,
    obj: NonNull<u8>,
    tag: u64,
}
// SAFETY: a plain address plus tag; whoever holds the `Live` owns the
// object it names, and the cache is `Sync`.
unsafe impl Send for Live {}

fn word(obj: NonNull<u8>) -> &'static AtomicU64 {
    // SAFETY: objects are 64 bytes, 8-aligned, and outlive every use here
    // (their region outlives the test body); the first word is only
    // accessed atomically while the object may be shared by a bug.
    unsafe { &*obj.cast::<AtomicU64>().as_ptr() }
}

fn alloc(cache: &Arc<Obj>, tag: u64) -> Option<Live> {
    let obj = cache.alloc()?;
    // Constructed and not out: it must carry MAGIC, nobody else's tag.
    if let Err(seen) = word(obj).compare_exchange(MAGIC, tag, Ordering::AcqRel, Ordering::Relaxed) {
        panic!("{obj:p} handed out twice (word {seen:#x}, new tag {tag:#x})");
    }
    // The rest of the object carries the tag too (a plain write, as a
    // user's would be).
    // SAFETY: the object is ours; bytes 8..64 are inside it.
    unsafe { obj.cast::<u64>().as_ptr().add(1).write(!tag) };
    Some(Live {
        cache: cache.clone(),
        obj,
        tag,
    })
}

fn free(l: Live) {
    // SAFETY: as in `alloc`.
    let tail = unsafe { l.obj.cast::<u64>().as_ptr().add(1).read() };
    assert_eq!(tail, !l.tag, "{:p}: object body overwritten", l.obj);
    let seen = word(l.obj).swap(MAGIC, Ordering::AcqRel);
    assert_eq!(seen, l.tag, "{:p}: tag changed while out", l.obj);
    // SAFETY: from this cache, out exactly once (the tag proves it), back
    // in its constructed state.
    unsafe { l.cache.free(l.obj) };
}

fn new_cache(region: &Arc<Region<Heap>>, stamp: &Arc<Stamp>, n: u64) -> Arc<Obj> {
    let slab = SlabCache::new(
        region.clone(),
        SlabConfig::new(format!("owner-only-{n}"), 64),
        stamp.clone(),
    )
    .unwrap();
    Arc::new(
        Cache::new(
            slab,
            CacheConfig::default()
                .register(false)
                .dynamic(true)
                .contention_threshold(0),
        )
        .unwrap(),
    )
}

fn migrate(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).expect("sched_setaffinity");
}

fn run_stress() {
    let mode = per_thread_mode();
    println!("handshake mode: {mode}");
    let ncpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = 2 * ncpus + 2;
    let stamp = Arc::new(Stamp::default());
    let region = Region::<Heap>::new(
        RegionParams::new("owner-only", 64, 200_000),
        HeapConfig::default(),
    )
    .unwrap();
    let current: Mutex<Arc<Obj>> = Mutex::new(new_cache(&region, &stamp, 0));
    let pool: Mutex<Vec<Live>> = Mutex::new(Vec::new());
    let done = AtomicBool::new(false);
    let next_tag = AtomicU64::new(1);
    let (ops, exits, migrations, recreated, walks) = (
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    );
    let backoffs_before = owner_slot_backoffs();
    let start = Instant::now();
    std::thread::scope(|s| {
        // Maintenance: purge, reap (with and without purge), resize.
        for m in 0..2u64 {
            let (current, done, walks) = (&current, &done, &walks);
            s.spawn(move || {
                let mut i = m;
                while !done.load(Ordering::Relaxed) {
                    let c = current.lock().unwrap().clone();
                    match i % 4 {
                        0 => c.purge(),
                        1 => c.reap_now(false),
                        2 => c.reap_now(true),
                        _ => c.debug_resize(),
                    }
                    let _ = c.stats();
                    walks.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                    std::thread::sleep(Duration::from_micros(200));
                }
            });
        }
        // Drop and recreate the cache; the old one dies when the last
        // object out of it comes back.
        {
            let (current, done, recreated, region, stamp) =
                (&current, &done, &recreated, &region, &stamp);
            s.spawn(move || {
                let mut n = 1;
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(300));
                    let fresh = new_cache(region, stamp, n);
                    drop(std::mem::replace(&mut *current.lock().unwrap(), fresh));
                    recreated.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            });
        }
        // Workers: each seat runs a succession of short-lived threads.
        for seat in 0..workers {
            let (current, pool, done, next_tag) = (&current, &pool, &done, &next_tag);
            let (ops, exits, migrations) = (&ops, &exits, &migrations);
            s.spawn(move || {
                let mut generation = 0u64;
                while !done.load(Ordering::Relaxed) {
                    std::thread::scope(|inner| {
                        inner
                            .spawn(|| {
                                let mut mine: Vec<Live> = Vec::new();
                                let mut rng =
                                    0x9e37_79b9_7f4a_7c15u64 ^ ((seat as u64) << 32) ^ generation;
                                let mut cache = current.lock().unwrap().clone();
                                for i in 0..LIFETIME {
                                    if done.load(Ordering::Relaxed) {
                                        break;
                                    }
                                    if i % MIGRATE_EVERY == 0 {
                                        migrate((seat + (i / MIGRATE_EVERY) as usize) % ncpus);
                                        migrations.fetch_add(1, Ordering::Relaxed);
                                    }
                                    if i % 512 == 0 {
                                        cache = current.lock().unwrap().clone();
                                    }
                                    rng ^= rng << 13;
                                    rng ^= rng >> 7;
                                    rng ^= rng << 17;
                                    match rng % 8 {
                                        // Allocate (more often than free, so
                                        // magazines fill and trade).
                                        0..=3 if mine.len() < 64 => {
                                            let tag = next_tag.fetch_add(1, Ordering::Relaxed);
                                            if let Some(l) = alloc(&cache, tag) {
                                                mine.push(l);
                                            }
                                        }
                                        // Hand one to another thread.
                                        4 => {
                                            if let Some(l) = mine.pop() {
                                                pool.lock().unwrap().push(l);
                                            }
                                        }
                                        // Free one another thread allocated.
                                        5 => {
                                            let l = pool.lock().unwrap().pop();
                                            if let Some(l) = l {
                                                free(l);
                                            }
                                        }
                                        _ => {
                                            if let Some(l) = mine.pop() {
                                                free(l);
                                            }
                                        }
                                    }
                                    ops.fetch_add(1, Ordering::Relaxed);
                                }
                                // Exit mid-run: half freed here, half handed on.
                                for (k, l) in mine.into_iter().enumerate() {
                                    if k % 2 == 0 {
                                        free(l);
                                    } else {
                                        pool.lock().unwrap().push(l);
                                    }
                                }
                            })
                            .join()
                            .unwrap();
                    });
                    exits.fetch_add(1, Ordering::Relaxed);
                    generation += 1;
                }
            });
        }
        std::thread::sleep(RUN);
        done.store(true, Ordering::Relaxed);
    });
    for l in pool.into_inner().unwrap() {
        free(l);
    }
    let cache = current.into_inner().unwrap();
    assert_eq!(
        Arc::strong_count(&cache),
        1,
        "every object came back, so only we hold the last cache"
    );
    cache.purge();
    cache.reclaim(true);
    let st = cache.stats();
    assert_eq!(
        (st.cpu_rounds, st.cpu_prounds, st.depot_full),
        (0, 0, 0),
        "{st:?}"
    );
    assert_eq!(
        region.stats().seginuse,
        0,
        "purge + reap gave every segment back: {:?}",
        region.stats()
    );
    drop(cache);
    assert_eq!(region.stats().seginuse, 0);
    let (ctors, dtors) = (stamp.ctors(), stamp.dtors());
    let (ops, exits, migrations) = (
        ops.load(Ordering::Relaxed),
        exits.load(Ordering::Relaxed),
        migrations.load(Ordering::Relaxed),
    );
    let backoffs = owner_slot_backoffs() - backoffs_before;
    println!(
        "{:?}: {ops} ops, {exits} thread exits, {migrations} migrations, {} caches recreated, \
         {} walks, {backoffs} owner back-offs, {ctors} ctors / {dtors} dtors",
        start.elapsed(),
        recreated.load(Ordering::Relaxed),
        walks.load(Ordering::Relaxed),
    );
    assert_eq!(ctors, dtors, "constructors and destructors balance");
    assert!(ctors > 0);
    assert!(ops > 10_000, "the workers made progress: {ops}");
    assert!(exits >= workers as u64, "threads exited mid-run: {exits}");
    assert!(
        migrations > workers as u64,
        "threads migrated: {migrations}"
    );
    assert!(recreated.load(Ordering::Relaxed) >= 2);
    if mode == "per-thread(membarrier)" {
        assert!(
            backoffs > 0,
            "no owner ever found its slot stopped: the hand-off path did not run"
        );
    }
}

#[test]
fn owner_only_slots_under_stress() {
    run_stress();
}

/// The same stress in the locked fallback, in a child process (the mode is
/// decided once per process).
#[test]
fn locked_fallback_under_stress() {
    if std::env::var_os("SKMEM_MEMBARRIER").is_some_and(|v| v == "off") {
        // We are the child.
        assert_eq!(per_thread_mode(), "per-thread(locked)");
        run_stress();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "locked_fallback_under_stress", "--nocapture"])
        .env("SKMEM_MEMBARRIER", "off")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("child: {stdout}");
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("handshake mode: per-thread(locked)"),
        "{stdout}"
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
}

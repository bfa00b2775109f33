//! The builders: what `capacity` and `max_capacity` mean, checked by
//! allocating until exhaustion and counting.

use std::sync::{Arc, Barrier};

use skmem::magazine::ladder::max_rounds;
use skmem::magazine::{magazine_max_objs_local, SeedLadder};
use skmem::{Cache, Error, PerCpu, PerThread, RegionLayout, Shadow};

/// Allocates until the cache says no, then frees everything; the count.
fn count_until_exhausted<B: skmem::magazine::ObjectLayer, L: skmem::CpuLocal>(
    cache: &Cache<B, L>,
) -> usize {
    let mut objs = Vec::new();
    while let Some(p) = cache.alloc() {
        objs.push(p);
    }
    let n = objs.len();
    for p in objs {
        // SAFETY: every object came from `cache` and is freed once.
        unsafe { cache.free(p) };
    }
    n
}

fn param_of(e: Error) -> &'static str {
    match e {
        Error::InvalidParam { param, .. } => param,
        other => panic!("expected InvalidParam, got {other:?}"),
    }
}

#[test]
fn the_first_example_builds_a_per_thread_cache_on_the_heap() {
    let cache = Cache::builder("first", 128).capacity(1024).build().unwrap();
    let stats = cache.stats();
    // The per-thread policy names the handshake mode it runs in.
    assert!(
        stats.locality.starts_with("per-thread("),
        "{}",
        stats.locality
    );
    let region = cache.layer().region();
    assert_eq!(region.stats().source, "heap");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let allowance = magazine_max_objs_local::<SeedLadder, PerThread>(128, threads);
    assert_eq!(region.params().magazine_max_objs, allowance);
    assert!(region.layout().obj_count >= 1024 + allowance);
    assert!(count_until_exhausted(&cache) >= 1024);
}

/// `capacity(n)`: `n` objects remain allocatable from the slab layer
/// while every magazine of every thread is full, without taking anything
/// back from those magazines. 4 KiB objects make the region's rounding
/// small (eight per segment) and their magazines never grow (14 rounds), so
/// a wrong allowance shows: sized for two slots (the old README's hand
/// value) instead of three, the `N` allocations would have to purge the
/// other threads' magazines.
#[test]
fn capacity_is_usable_with_every_magazine_full() {
    const N: usize = 20;
    const THREADS: usize = 3;
    let cache = Cache::builder("floor", 4096)
        .capacity(N)
        .threads(THREADS)
        .build()
        .unwrap();
    let rounds = max_rounds::<SeedLadder>(4096) as usize;
    assert_eq!(rounds, 14);
    // Two magazines per slot; a per-thread cache has no per-CPU front.
    let allowance = THREADS * 2 * rounds;
    let layout = *cache.layer().region().layout();
    assert_eq!(cache.layer().region().params().magazine_max_objs, allowance);
    assert!(layout.obj_count >= N + allowance);
    assert!(
        layout.obj_count < N + allowance + layout.objs_per_seg as usize,
        "rounded up by less than a segment: {layout:?}"
    );

    // Each thread fills its two magazines (alloc 2 * rounds, free them all)
    // and stays alive, holding them, while the main thread counts.
    let filled = Arc::new(Barrier::new(THREADS + 1));
    let counted = Arc::new(Barrier::new(THREADS + 1));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (cache, filled, counted) = (cache.clone(), filled.clone(), counted.clone());
            std::thread::spawn(move || {
                let objs: Vec<_> = (0..2 * rounds)
                    .map(|_| cache.alloc().expect("room for every magazine"))
                    .collect();
                for p in objs {
                    // SAFETY: allocated above from `cache`, freed once.
                    unsafe { cache.free(p) };
                }
                filled.wait();
                counted.wait();
            })
        })
        .collect();
    filled.wait();
    let held = cache.stats();
    assert_eq!(
        (held.cpu_rounds + held.cpu_prounds) as usize,
        THREADS * 2 * rounds,
        "every magazine of the three threads is full"
    );
    let mut objs: Vec<_> = (0..N)
        .map(|i| cache.alloc().unwrap_or_else(|| panic!("object {i} of {N}")))
        .collect();
    let after = cache.stats();
    assert_eq!(
        after.cpu_mag_purge, held.cpu_mag_purge,
        "no magazine was purged"
    );
    assert_eq!(
        (after.cpu_rounds + after.cpu_prounds) as usize,
        THREADS * 2 * rounds,
        "the other threads' magazines are still full"
    );
    // Beyond the floor, the region takes cached objects back: everything
    // is reachable in the end.
    while let Some(p) = cache.alloc() {
        objs.push(p);
    }
    assert_eq!(objs.len(), layout.obj_count, "every object reachable");
    assert!(cache.stats().cpu_mag_purge > held.cpu_mag_purge);
    for p in objs {
        // SAFETY: from `cache`, freed once.
        unsafe { cache.free(p) };
    }
    counted.wait();
    for w in workers {
        w.join().unwrap();
    }
}

/// `max_capacity(n)`: the region never holds more than `n` objects.
#[test]
fn max_capacity_is_a_ceiling() {
    // 100 objects of 128 bytes are 12 800 bytes: a single segment of whole
    // pages holds 96 of them.
    let cache = Cache::builder("ceil", 128)
        .max_capacity(100)
        .build()
        .unwrap();
    assert_eq!(cache.layer().region().layout().obj_count, 96);
    assert_eq!(count_until_exhausted(&cache), 96);

    // Many segments: rounded down to whole segments.
    let cache = Cache::builder("ceil2", 128)
        .max_capacity(1000)
        .build()
        .unwrap();
    let layout = *cache.layer().region().layout();
    assert!(layout.obj_count <= 1000 && layout.obj_count > 1000 - layout.objs_per_seg as usize);
    assert_eq!(count_until_exhausted(&cache), layout.obj_count);

    // The floor alone rounds up: asking 1 gives far more.
    let floor = Cache::builder("floor1", 128).capacity(1).build().unwrap();
    assert!(floor.layer().region().layout().obj_count > 1);
}

#[test]
fn max_capacity_of_a_few_objects_holds_and_clashes_are_named() {
    // Not even one page's worth of 128-byte objects: the page holds just
    // the one, spaced out (a real ceiling, not an error).
    let one = Cache::builder("tiny", 128).max_capacity(1).build().unwrap();
    assert_eq!(one.layer().region().layout().obj_count, 1);
    assert_eq!(count_until_exhausted(&one), 1);
    let eight = Cache::builder("eight", 128)
        .max_capacity(8)
        .build()
        .unwrap();
    assert_eq!(eight.layer().region().layout().obj_size, 512);
    assert_eq!(count_until_exhausted(&eight), 8);
    // A ceiling that leaves no room for the floor plus the magazines.
    let e = Cache::builder("clash", 128)
        .capacity(100)
        .max_capacity(120)
        .build()
        .unwrap_err();
    assert_eq!(param_of(e), "max_capacity");
    // Neither set.
    let e = Cache::builder("unset", 128).build().unwrap_err();
    assert_eq!(param_of(e), "capacity");
    // Both, compatible: the floor holds and the ceiling too.
    let cache = Cache::builder("both", 128)
        .capacity(100)
        .max_capacity(100_000)
        .threads(2)
        .build()
        .unwrap();
    let n = cache.layer().region().layout().obj_count;
    assert!((100..=100_000).contains(&n));
}

#[test]
fn locality_source_ctor_align_and_mirror_are_honoured() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Count(AtomicUsize);
    impl skmem::ObjectCtor for Count {
        fn construct(
            &self,
            obj: skmem::ObjectInfo,
            _: Option<skmem::ObjectInfo>,
            _: skmem::AllocFlags,
        ) -> skmem::Result<()> {
            // SAFETY: the constructor owns `obj.size` bytes at `obj.addr`.
            unsafe { obj.addr.as_ptr().write_bytes(0xab, obj.size) };
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        fn destruct(&self, _: skmem::ObjectInfo, _: Option<skmem::ObjectInfo>) {}
    }

    let cache = Cache::builder("percpu", 64)
        .capacity(10)
        .locality::<PerCpu>()
        .align(32)
        .ctor(Count(AtomicUsize::new(0)))
        .source::<skmem::Mmap>(Default::default())
        .build()
        .unwrap();
    assert!(
        cache.stats().locality.starts_with("per-cpu("),
        "{}",
        cache.stats().locality
    );
    assert_eq!(cache.layer().region().stats().source, "mmap");
    let p = cache.alloc().unwrap();
    assert_eq!(p.as_ptr() as usize % 32, 0);
    // SAFETY: a constructed object of 64 bytes.
    assert_eq!(unsafe { p.as_ptr().read() }, 0xab);
    assert!(cache.layer().ctor().0.load(Ordering::Relaxed) >= 1);
    // SAFETY: from `cache`, freed once.
    unsafe { cache.free(p) };

    let cache = Cache::builder("mirrored", 64)
        .capacity(10)
        .locality::<PerThread>()
        .mirror(|l: &RegionLayout| {
            let params = skmem::RegionParams::new("shadow", l.obj_size, l.obj_count)
                .seg_size(l.seg_size)
                .mode(skmem::RegionMode::NOMAGAZINES);
            Ok(Shadow(skmem::Region::<skmem::Heap>::new(
                params,
                Default::default(),
            )?))
        })
        .build()
        .unwrap();
    let p = cache.alloc().unwrap();
    assert_eq!(
        cache.layer().region().mirror().0.stats().seginuse,
        1,
        "the shadow follows"
    );
    // SAFETY: from `cache`, freed once.
    unsafe { cache.free(p) };
}

/// `RegionParams::max_capacity` over many shapes: never above the ceiling,
/// never below the request, and the layout invariants hold.
#[test]
fn region_ceilings_keep_the_layout_invariants() {
    use skmem::{RegionMode, RegionParams};
    for obj in [
        1, 8, 64, 100, 128, 192, 1000, 2048, 4096, 6000, 10_000, 70_000,
    ] {
        for count in [1, 7, 100, 1000] {
            for extra in [0, 1, 33, 5000] {
                for mode in [RegionMode::empty(), RegionMode::MONOLITHIC] {
                    let max = count + extra;
                    let p = RegionParams::new("sweep", obj, count)
                        .magazine_max_objs(64)
                        .mode(mode)
                        .max_capacity(max);
                    match p.configure() {
                        Ok(l) => {
                            assert!(l.obj_count <= max, "{obj} {count} {max}: {l:?}");
                            assert!(l.obj_count >= 1);
                            assert_eq!(l.objs_per_seg as usize * l.seg_count as usize, l.obj_count);
                            assert_eq!(l.seg_size % 4096, 0, "{l:?}");
                            assert!(l.seg_size / l.obj_size == l.objs_per_seg as usize);
                            let floor = RegionParams::new("sweep", obj, count)
                                .magazine_max_objs(64)
                                .mode(mode)
                                .configure()
                                .unwrap();
                            if max * floor.obj_size >= 4096 {
                                assert_eq!(l.obj_size, floor.obj_size, "same chunk size");
                            } else {
                                // Below one page's worth: spaced out, never
                                // more than `max` in the one segment.
                                assert!(l.obj_size >= floor.obj_size, "{l:?}");
                                assert_eq!(l.seg_count, 1, "{l:?}");
                            }
                        }
                        Err(e) => panic!("{obj} {count} {max}: {e:?}"),
                    }
                }
            }
        }
    }
}

/// A bounded sleep through the whole stack: with every object of a
/// `max_capacity` cache held, `SleepFor` waits its limit and names the
/// exhausted region; once an object is back it is served at once.
#[test]
fn sleep_for_bounds_the_wait_on_a_full_cache() {
    use std::time::{Duration, Instant};

    let cache = Cache::builder("bounded", 128)
        .max_capacity(96)
        .build()
        .unwrap();
    let mut held = Vec::new();
    while let Some(p) = cache.alloc() {
        held.push(p);
    }
    assert_eq!(held.len(), 96);
    let limit = Duration::from_millis(30);
    let start = Instant::now();
    let err = cache
        .alloc_with(skmem::AllocFlags::SleepFor(limit))
        .unwrap_err();
    assert!(
        start.elapsed() >= limit,
        "gave up after {:?}",
        start.elapsed()
    );
    assert!(err.is_exhaustion(), "{err}");
    assert!(err.to_string().contains("bounded"), "{err}");
    let last = held.pop().unwrap();
    // SAFETY: from `cache`, freed once.
    unsafe { cache.free(last) };
    let again = cache
        .alloc_with(skmem::AllocFlags::SleepFor(limit))
        .expect("the freed object");
    assert_eq!(again, last);
    held.push(again);
    for p in held {
        // SAFETY: every object came from `cache` and is freed once.
        unsafe { cache.free(p) };
    }
}

//! Slab cache behaviour on the heap backend (runs under Miri).

mod slab_common;

use std::collections::HashSet;
use std::mem::MaybeUninit;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use skmem_backends::{Heap, HeapConfig};
use skmem_slab::{Region, RegionParams, SlabCache, SlabConfig};
use skmem_traits::{AllocFlags, Error, NoCtor, RegionMode};

use slab_common::*;

type HeapCache<C = NoCtor> = SlabCache<Heap, C>;

fn cache(name: &str, size: usize, count: usize) -> HeapCache {
    SlabCache::new(
        heap_region(name, size, count),
        SlabConfig::new(name, size),
        NoCtor,
    )
    .unwrap()
}

#[test]
fn alloc_free_round_trip_returns_all_memory() {
    let c = cache("round", 64, 128);
    assert_eq!(c.chunk_size(), 64);
    assert_eq!(c.objs_per_slab(), 64);
    assert!(!c.lookup_is_arithmetic());
    let objs: Vec<_> = (0..128)
        .map(|_| c.alloc_with(AllocFlags::NoSleep).unwrap())
        .collect();
    let distinct: HashSet<_> = objs.iter().map(|p| p.as_ptr() as usize).collect();
    assert_eq!(distinct.len(), 128);
    for p in &objs {
        assert_eq!(p.as_ptr() as usize % 64, 0);
    }
    // The region is exhausted now.
    let err = c.alloc_with(AllocFlags::NoSleep).unwrap_err();
    assert!(matches!(err, Error::Exhausted { .. }), "{err}");
    let s = c.stats();
    assert_eq!((s.sl_alloc, s.sl_free, s.sl_bufinuse), (128, 0, 128));
    assert_eq!((s.sl_full, s.sl_partial, s.sl_empty), (2, 0, 0));
    assert_eq!((s.sl_create, s.sl_alloc_fail), (2, 1));
    assert!(s.sl_hash_size >= 128);
    assert_eq!(c.region().segments_in_use(), 2);
    c.check_invariants().unwrap();

    for p in objs {
        // SAFETY: allocated above, freed once.
        unsafe { c.free(p) };
    }
    let s = c.stats();
    assert_eq!((s.sl_alloc, s.sl_free, s.sl_bufinuse), (128, 128, 0));
    // One empty slab stays cached, the other went back to the region.
    assert_eq!((s.sl_empty, s.sl_destroy), (1, 1));
    assert_eq!(c.region().segments_in_use(), 1);
    c.reap();
    assert_eq!(c.stats().sl_empty, 0);
    assert_eq!(c.stats().sl_destroy, 2);
    assert_eq!(c.region().segments_in_use(), 0);
    c.check_invariants().unwrap();
}

#[test]
fn lists_follow_counts() {
    let c = cache("lists", 64, 128);
    let a = c.alloc_with(AllocFlags::NoSleep).unwrap();
    let s = c.stats();
    assert_eq!((s.sl_partial, s.sl_empty, s.sl_full), (1, 0, 0));
    let rest: Vec<_> = (0..63)
        .map(|_| c.alloc_with(AllocFlags::NoSleep).unwrap())
        .collect();
    let s = c.stats();
    assert_eq!((s.sl_partial, s.sl_empty, s.sl_full), (0, 0, 1));
    // SAFETY: allocated above, freed once.
    unsafe { c.free(a) };
    let s = c.stats();
    assert_eq!((s.sl_partial, s.sl_empty, s.sl_full), (1, 0, 0));
    // Partial slabs are used before a new slab is made.
    let b = c.alloc_with(AllocFlags::NoSleep).unwrap();
    assert_eq!(b, a, "the freed object is reused first (LIFO)");
    assert_eq!(c.stats().sl_create, 1);
    // SAFETY: allocated above, freed once each.
    unsafe {
        c.free(b);
        c.free_batch(&rest);
    }
    let s = c.stats();
    assert_eq!((s.sl_partial, s.sl_empty, s.sl_full), (0, 1, 0));
    c.check_invariants().unwrap();
}

#[test]
fn object_info_by_hash_matches_addresses() {
    let c = cache("info", 128, 96);
    let objs: Vec<_> = (0..96)
        .map(|_| c.alloc_with(AllocFlags::NoSleep).unwrap())
        .collect();
    let layout = *c.region().layout();
    let mut indices = HashSet::new();
    for p in &objs {
        let info = c
            .object_info(p.as_ptr())
            .expect("allocated object has info");
        let seg = c.region().segment_of(p.as_ptr()).unwrap();
        assert_eq!(info.addr, *p);
        assert_eq!(info.size, 128);
        assert_eq!(info.segment_index, seg.index);
        assert_eq!(
            p.as_ptr() as usize - seg.base.as_ptr() as usize,
            info.index_in_segment as usize * 128
        );
        assert_eq!(
            info.index_in_region,
            info.segment_index * layout.objs_per_seg + info.index_in_segment
        );
        assert!((info.index_in_region as usize) < layout.obj_count);
        assert!(indices.insert(info.index_in_region));
        // Interior and free addresses have no info.
        assert_eq!(c.object_info(p.as_ptr().wrapping_add(1)), None);
    }
    // SAFETY: allocated above, freed once.
    unsafe { c.free(objs[5]) };
    assert_eq!(c.object_info(objs[5].as_ptr()), None);
    // SAFETY: allocated above, freed once.
    unsafe { c.free_batch(&[&objs[..5], &objs[6..]].concat()) };
    c.reap();
    assert_eq!(c.region().segments_in_use(), 0);
}

#[test]
fn bad_parameters_are_named() {
    let region = heap_region("params", 64, 64);
    let param = |cfg: SlabConfig| match SlabCache::new(region.clone(), cfg, NoCtor) {
        Err(Error::InvalidParam { param, .. }) => param,
        other => panic!("expected InvalidParam, got {other:?}"),
    };
    assert_eq!(param(SlabConfig::new("p", 0)), "obj_size");
    assert_eq!(param(SlabConfig::new("p", 65)), "obj_size");
    assert_eq!(param(SlabConfig::new("p", 64).align(3)), "align");
    assert_eq!(param(SlabConfig::new("p", 64).align(0)), "align");
    assert_eq!(param(SlabConfig::new("p", 64).align(128)), "align");
    assert!(SlabCache::new(region.clone(), SlabConfig::new("p", 64).align(64), NoCtor).is_ok());
    assert!(SlabCache::new(region.clone(), SlabConfig::new("p", 40), NoCtor).is_ok());
    assert_eq!(SlabConfig::new("p", 40).align, 8);
    // Objects smaller than a pointer cannot chain.
    let small = heap_region("small", 4, 64);
    let err = SlabCache::new(small, SlabConfig::new("s", 4).batch(true), NoCtor).unwrap_err();
    assert!(matches!(err, Error::InvalidParam { param: "batch", .. }));
}

#[test]
fn small_chunks_limit_alignment() {
    // A 16-byte object divides the cache line, so chunks are 16 bytes apart.
    let region = heap_region("small16", 16, 512);
    assert_eq!(region.layout().obj_size, 16);
    let err =
        SlabCache::new(region.clone(), SlabConfig::new("s", 16).align(32), NoCtor).unwrap_err();
    assert!(matches!(err, Error::InvalidParam { param: "align", .. }));
    let c = SlabCache::new(region, SlabConfig::new("s", 16), NoCtor).unwrap();
    assert_eq!(c.obj_align(), 16);
    let a = c.alloc_with(AllocFlags::NoSleep).unwrap();
    let b = c.alloc_with(AllocFlags::NoSleep).unwrap();
    assert_eq!(b.as_ptr() as usize - a.as_ptr() as usize, 16);
    // SAFETY: allocated above, freed once.
    unsafe { c.free_batch(&[a, b]) };
    c.reap();
}

#[test]
fn ctor_and_dtor_balance() {
    let region = heap_region("ctor", 64, 128);
    let c = SlabCache::new(region, SlabConfig::new("ctor", 64), CheckingCtor::default()).unwrap();
    let mut objs = Vec::new();
    for _ in 0..100 {
        let p = c.alloc_with(AllocFlags::NoSleep).unwrap();
        // SAFETY: a constructed object of 64 bytes, ours.
        assert_eq!(unsafe { bytes(p, 64) }, vec![CTOR_PATTERN; 64]);
        objs.push(p);
    }
    assert_eq!(c.ctor().live_count(), 100);
    assert_eq!(c.stats().ctor, 100);
    // SAFETY: allocated above, freed once each.
    unsafe {
        c.free_batch(&objs[..50]);
        for p in &objs[50..] {
            c.free(*p);
        }
    }
    let s = c.stats();
    assert_eq!((s.ctor, s.dtor), (100, 100));
    assert_eq!(c.ctor().live_count(), 0);
    c.check_invariants().unwrap();
}

#[test]
fn ctor_failure_fails_cleanly() {
    let region = heap_region_mode("ctorfail", 64, 64, RegionMode::MONOLITHIC);
    let cfg = SlabConfig::new("ctorfail", 64).clear_on_free(true);
    let c = SlabCache::new(region, cfg, CheckingCtor::default()).unwrap();
    let keep = c.alloc_with(AllocFlags::NoSleep).unwrap();

    c.ctor().fail_after.store(1, Ordering::Relaxed);
    let err = c.alloc_with(AllocFlags::NoSleep).unwrap_err();
    assert!(matches!(err, Error::CtorFailed { .. }), "{err}");
    let s = c.stats();
    assert_eq!(s.sl_alloc_fail, 1);
    assert_eq!(s.sl_bufinuse, 1);
    assert_eq!(s.sl_alloc - s.sl_free, s.sl_bufinuse);
    assert_eq!(s.ctor, 1);
    assert_eq!(c.ctor().refused.load(Ordering::Relaxed), 1);
    assert_eq!(c.object_info(keep.as_ptr().wrapping_add(64)), None);
    // The refused object (the next one in the slab) went back, cleared of
    // what the constructor scribbled.
    let refused = NonNull::new(keep.as_ptr().wrapping_add(64)).unwrap();
    // SAFETY: the slab is live (it holds `keep`) and nobody uses the free
    // object.
    assert_eq!(unsafe { bytes(refused, 64) }, vec![0; 64]);
    c.check_invariants().unwrap();

    c.ctor().fail_all.store(true, Ordering::Relaxed);
    let mut out = [MaybeUninit::uninit(); 8];
    assert_eq!(c.alloc_batch(&mut out, AllocFlags::NoSleep), 0);
    assert_eq!(c.stats().sl_alloc_fail, 2);
    assert_eq!(c.stats().sl_bufinuse, 1);
    c.ctor().fail_all.store(false, Ordering::Relaxed);

    let p = c.alloc_with(AllocFlags::NoSleep).unwrap();
    assert_eq!(p, refused, "the refused object is handed out next");
    assert_eq!(c.stats().ctor, 2);
    // SAFETY: allocated above, freed once each.
    unsafe { c.free_batch(&[keep, p]) };
    let s = c.stats();
    assert_eq!((s.ctor, s.dtor, s.sl_bufinuse), (2, 2, 0));
    assert_eq!(s.sl_alloc - s.sl_free, 0);
    assert_eq!(c.ctor().live_count(), 0);
    c.check_invariants().unwrap();
    c.reap();
    assert_eq!(c.region().segments_in_use(), 0);
}

#[test]
fn batch_stops_at_ctor_failure_and_keeps_prefix() {
    let region = heap_region("batchfail", 64, 128);
    let c = SlabCache::new(region, SlabConfig::new("bf", 64), CheckingCtor::default()).unwrap();
    // Three constructions succeed, the fourth fails.
    c.ctor().fail_after.store(4, Ordering::Relaxed);
    let mut out = [MaybeUninit::uninit(); 8];
    assert_eq!(c.alloc_batch(&mut out, AllocFlags::NoSleep), 3);
    let s = c.stats();
    assert_eq!((s.sl_bufinuse, s.ctor, s.sl_alloc_fail), (3, 3, 0));
    assert_eq!(s.sl_alloc - s.sl_free, 3);
    assert_eq!(c.ctor().live_count(), 3);
    // SAFETY: the first 3 were initialised by alloc_batch.
    let got: Vec<NonNull<u8>> = out[..3]
        .iter()
        .map(|p| unsafe { p.assume_init() })
        .collect();
    for p in &got {
        assert!(c.ctor().live().contains_key(&(p.as_ptr() as usize)));
    }
    // SAFETY: allocated above, freed once.
    unsafe { c.free_batch(&got) };
    let s = c.stats();
    assert_eq!((s.sl_bufinuse, s.ctor, s.dtor), (0, 3, 3));
    c.check_invariants().unwrap();
}

#[test]
fn clear_on_free_zeroes_the_object() {
    // One segment, so the freed object comes back on the next allocation.
    let region = heap_region_mode("clear", 64, 64, RegionMode::MONOLITHIC);
    assert_eq!(region.layout().seg_count, 1);
    let c = SlabCache::new(
        region,
        SlabConfig::new("clear", 64).clear_on_free(true),
        NoCtor,
    )
    .unwrap();
    let p = c.alloc_with(AllocFlags::NoSleep).unwrap();
    // SAFETY: a 64-byte object we own.
    unsafe { std::ptr::write_bytes(p.as_ptr(), 0xAB, 64) };
    // SAFETY: allocated above, freed once.
    unsafe { c.free(p) };
    let q = c.alloc_with(AllocFlags::NoSleep).unwrap();
    assert_eq!(q, p);
    // SAFETY: a 64-byte object we own.
    assert_eq!(unsafe { bytes(q, 64) }, vec![0; 64]);
    // SAFETY: allocated above, freed once.
    unsafe { c.free(q) };

    // Without clear-on-free the pattern survives (the check can fail).
    let region = heap_region_mode("noclear", 64, 64, RegionMode::MONOLITHIC);
    let c = SlabCache::new(region, SlabConfig::new("noclear", 64), NoCtor).unwrap();
    let p = c.alloc_with(AllocFlags::NoSleep).unwrap();
    // SAFETY: a 64-byte object we own.
    unsafe { std::ptr::write_bytes(p.as_ptr(), 0xAB, 64) };
    // SAFETY: allocated above, freed once.
    unsafe { c.free(p) };
    let q = c.alloc_with(AllocFlags::NoSleep).unwrap();
    assert_eq!(q, p);
    // SAFETY: a 64-byte object we own.
    assert_eq!(unsafe { bytes(q, 64) }, vec![0xAB; 64]);
    // SAFETY: allocated above, freed once.
    unsafe { c.free(q) };
}

#[test]
fn clear_after_dtor_on_mirrored_region() {
    let params = || {
        RegionParams::new("mirror", 64, 64)
            .seg_size(4096)
            .mode(RegionMode::NOMAGAZINES | RegionMode::MONOLITHIC)
    };
    let shadow = Region::<Heap>::new(params(), HeapConfig::default()).unwrap();
    let master = Region::<Heap, _>::with_mirror(
        params(),
        HeapConfig::default(),
        skmem_slab::Shadow(shadow.clone()),
    )
    .unwrap();
    let c = SlabCache::new(
        master,
        SlabConfig::new("mirror", 64).clear_on_free(true),
        CheckingCtor::default(),
    )
    .unwrap();
    let p = c.alloc_with(AllocFlags::NoSleep).unwrap();
    let (info, sh) = c.object_info_with_shadow(p.as_ptr()).unwrap();
    let sh = sh.expect("mirrored region has a shadow object");
    assert_eq!(sh.index_in_region, info.index_in_region);
    let shadow_seg = shadow.segment_of(sh.addr.as_ptr()).unwrap();
    assert_eq!(shadow_seg.index, info.segment_index);
    assert_eq!(
        sh.addr.as_ptr() as usize - shadow_seg.base.as_ptr() as usize,
        info.index_in_segment as usize * 64
    );
    // SAFETY: the shadow object is ours with the master object.
    unsafe { std::ptr::write_bytes(sh.addr.as_ptr(), 0x5A, 64) };
    // SAFETY: allocated above, freed once.
    unsafe { c.free(p) };
    // The object is free, its memory still in the cached slab: both zero.
    // SAFETY: the slab (and its shadow) is cached, so the memory is live;
    // nobody else uses it.
    assert_eq!(unsafe { bytes(p, 64) }, vec![0; 64]);
    // SAFETY: as above.
    assert_eq!(unsafe { bytes(sh.addr, 64) }, vec![0; 64]);
    c.reap();
    assert_eq!(shadow.segments_in_use(), 0);
}

#[test]
fn chains_link_through_first_word() {
    let region = heap_region("chain", 64, 128);
    let c = SlabCache::new(
        region,
        SlabConfig::new("chain", 64).batch(true),
        CheckingCtor::default(),
    )
    .unwrap();
    let (head, n) = c.alloc_chain(100, AllocFlags::NoSleep).unwrap();
    assert_eq!(n, 100);
    let mut seen = HashSet::new();
    let mut cur = Some(head);
    while let Some(p) = cur {
        assert!(c.object_info(p.as_ptr()).is_some());
        assert!(seen.insert(p.as_ptr() as usize));
        // SAFETY: chain objects are ours and at least pointer-sized.
        cur = NonNull::new(unsafe { p.as_ptr().cast::<*mut u8>().read_unaligned() });
    }
    assert_eq!(seen.len(), 100);
    assert_eq!(c.stats().ctor, 100);
    // Asking for more than remain gives what there is.
    let (head2, n2) = c.alloc_chain(100, AllocFlags::NoSleep).unwrap();
    assert_eq!(n2, 28);
    assert!(matches!(
        c.alloc_chain(1, AllocFlags::NoSleep),
        Err(Error::Exhausted { .. })
    ));
    // SAFETY: both chains came from alloc_chain and are freed once.
    unsafe {
        assert_eq!(c.free_chain(head), 100);
        assert_eq!(c.free_chain(head2), 28);
    }
    let s = c.stats();
    assert_eq!((s.sl_bufinuse, s.ctor, s.dtor), (0, 128, 128));
    assert!(matches!(
        c.alloc_chain(0, AllocFlags::NoSleep),
        Err(Error::InvalidParam { param: "count", .. })
    ));
    c.reap();
    assert_eq!(c.region().segments_in_use(), 0);
    c.check_invariants().unwrap();
}

#[test]
fn chains_refused_where_another_process_may_map() {
    for mode in [RegionMode::MMAPOK, RegionMode::SHAREOK] {
        let region = heap_region_mode("shared", 64, 64, mode);
        let err = SlabCache::new(region.clone(), SlabConfig::new("s", 64).batch(true), NoCtor)
            .unwrap_err();
        match err {
            Error::InvalidParam { param, .. } => assert_eq!(param, "batch"),
            other => panic!("expected InvalidParam(batch), got {other:?}"),
        }
        // Without batch the cache works, and chain calls are refused.
        let c = SlabCache::new(region, SlabConfig::new("s", 64), NoCtor).unwrap();
        let err = c.alloc_chain(4, AllocFlags::NoSleep).unwrap_err();
        assert!(
            matches!(err, Error::Invalid { field: "batch", .. }),
            "{err}"
        );
        let mut out = [MaybeUninit::uninit(); 4];
        assert_eq!(c.alloc_batch(&mut out, AllocFlags::NoSleep), 4);
        // SAFETY: all four initialised above.
        let got: Vec<_> = out.iter().map(|p| unsafe { p.assume_init() }).collect();
        // SAFETY: allocated above, freed once.
        unsafe { c.free_batch(&got) };
        assert_eq!(c.stats().sl_bufinuse, 0);
    }
}

#[test]
fn alloc_batch_spans_slabs_and_stops_at_exhaustion() {
    let c = cache("batch", 64, 192);
    let mut out = vec![MaybeUninit::uninit(); 200];
    let n = c.alloc_batch(&mut out, AllocFlags::NoSleep);
    assert_eq!(n, 192);
    assert_eq!(c.stats().sl_create, 3);
    // SAFETY: the first n were initialised.
    let got: Vec<_> = out[..n]
        .iter()
        .map(|p| unsafe { p.assume_init() })
        .collect();
    let distinct: HashSet<_> = got.iter().map(|p| p.as_ptr() as usize).collect();
    assert_eq!(distinct.len(), 192);
    assert_eq!(c.alloc_batch(&mut out[..1], AllocFlags::NoSleep), 0);
    assert_eq!(c.alloc_batch(&mut [], AllocFlags::NoSleep), 0);
    // SAFETY: allocated above, freed once.
    unsafe { c.free_batch(&got) };
    assert_eq!(c.stats().sl_bufinuse, 0);
    c.reap();
    assert_eq!(c.region().segments_in_use(), 0);
}

#[test]
#[should_panic(expected = "slab cache `dbl`: free of 0x")]
fn double_free_panics_naming_cache() {
    let c = cache("dbl", 64, 64);
    let p = c.alloc_with(AllocFlags::NoSleep).unwrap();
    // (No other object stays out, so the unwinding drop leaks nothing.)
    // SAFETY: the first free is legitimate; the second must panic.
    unsafe {
        c.free(p);
        c.free(p);
    }
}

#[test]
#[should_panic(expected = "slab cache `foreign`")]
fn foreign_free_panics_naming_cache() {
    let c = cache("foreign", 64, 64);
    let mut local = [0u64; 8];
    // SAFETY: the address is not from the cache: it must be refused.
    unsafe { c.free(NonNull::from(&mut local).cast()) };
}

#[test]
fn bad_free_message_names_address_and_leaves_state_intact() {
    let c = cache("msg", 64, 64);
    let p = c.alloc_with(AllocFlags::NoSleep).unwrap();
    let q = c.alloc_with(AllocFlags::NoSleep).unwrap();
    // SAFETY: legitimate free.
    unsafe { c.free(p) };
    let caught = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: a double free, which must panic before touching anything.
        unsafe { c.free(p) }
    }))
    .unwrap_err();
    let msg = panic_message(caught);
    assert!(msg.contains("`msg`"), "{msg}");
    assert!(msg.contains(&format!("{p:p}")), "{msg}");
    // A batch with a bad element in the middle leaves its group allocated.
    let r = c.alloc_with(AllocFlags::NoSleep).unwrap();
    let bad = NonNull::new(q.as_ptr().wrapping_add(8)).unwrap();
    let caught = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `bad` is an interior pointer and must be refused.
        unsafe { c.free_batch(&[q, bad, r]) }
    }))
    .unwrap_err();
    assert!(panic_message(caught).contains(&format!("{bad:p}")));
    assert_eq!(c.stats().sl_bufinuse, 2);
    assert!(c.object_info(q.as_ptr()).is_some());
    c.check_invariants().unwrap();
    // A repeated address inside one batch is a double free too.
    let caught = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the second `q` must be refused.
        unsafe { c.free_batch(&[q, q]) }
    }));
    assert!(caught.is_err());
    assert_eq!(c.stats().sl_bufinuse, 2);
    // SAFETY: legitimate frees.
    unsafe { c.free_batch(&[q, r]) };
    c.check_invariants().unwrap();
}

#[test]
fn try_free_refuses_without_panicking() {
    let c = cache("try", 64, 64);
    let p = c.alloc_with(AllocFlags::NoSleep).unwrap();
    let keep = c.alloc_with(AllocFlags::NoSleep).unwrap();
    let mut local = 0u64;
    // SAFETY: every call below either frees an object we own once or must
    // be refused.
    unsafe {
        let err = c.try_free(std::ptr::null_mut()).unwrap_err();
        assert!(matches!(err, Error::Invalid { field: "obj", .. }));
        let err = c
            .try_free(std::ptr::from_mut(&mut local).cast())
            .unwrap_err();
        assert!(err.to_string().contains("`try`"), "{err}");
        c.try_free(p.as_ptr()).unwrap();
        let err = c.try_free(p.as_ptr()).unwrap_err();
        assert!(err.to_string().contains(&format!("{p:p}")), "{err}");
        let err = c.try_free(keep.as_ptr().wrapping_add(1)).unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }));
    }
    let s = c.stats();
    assert_eq!((s.sl_alloc, s.sl_free, s.sl_bufinuse), (2, 1, 1));
    // SAFETY: legitimate free.
    unsafe { c.free(keep) };
    c.check_invariants().unwrap();
}

#[test]
fn drop_with_objects_out_leaks_only_their_slabs() {
    let region = heap_region("dropleak", 64, 192);
    let c = SlabCache::new(region.clone(), SlabConfig::new("dropleak", 64), NoCtor).unwrap();
    let objs: Vec<_> = (0..130)
        .map(|_| c.alloc_with(AllocFlags::NoSleep).unwrap())
        .collect();
    // Empty the first two slabs (LIFO order keeps it simple: free the
    // first 128 objects, which fill slabs 0 and 1 exactly).
    // SAFETY: allocated above, freed once.
    unsafe { c.free_batch(&objs[..128]) };
    assert_eq!(
        region.segments_in_use(),
        2,
        "one empty slab cached, one with objects"
    );
    drop(c);
    // The empty slab went back; the slab with objects out is kept.
    assert_eq!(region.segments_in_use(), 1);
    // Give the leaked segment back by hand so the test leaks nothing.
    let seg = region.segment_of(objs[128].as_ptr()).unwrap();
    // SAFETY: the cache is gone; nothing uses the segment.
    unsafe { region.free_segment(seg) };
    assert_eq!(region.segments_in_use(), 0);
}

#[test]
fn cache_is_send_sync_and_reaps_via_trait() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SlabCache<Heap>>();
    assert_send_sync::<SlabCache<Heap, CheckingCtor>>();
    let c = Arc::new(cache("reaper", 64, 128));
    let objs: Vec<_> = (0..64)
        .map(|_| c.alloc_with(AllocFlags::NoSleep).unwrap())
        .collect();
    // SAFETY: allocated above, freed once.
    unsafe { c.free_batch(&objs) };
    assert_eq!(c.region().segments_in_use(), 1);
    let weak: std::sync::Weak<dyn skmem_slab::Reap> =
        Arc::downgrade(&(c.clone() as Arc<dyn skmem_slab::Reap>));
    c.region().add_reaper(weak);
    // Exhaust the region from a second cache: the region asks our cache to
    // reap, which frees the cached empty slab.
    let other = SlabCache::new(c.region().clone(), SlabConfig::new("other", 64), NoCtor).unwrap();
    let taken: Vec<_> = (0..128)
        .map(|_| other.alloc_with(AllocFlags::NoSleep).unwrap())
        .collect();
    assert_eq!(c.stats().sl_destroy, 1);
    // SAFETY: allocated above, freed once.
    unsafe { other.free_batch(&taken) };
    other.reap();
    assert_eq!(c.region().segments_in_use(), 0);
}

#[test]
fn panicking_dtor_in_free_batch_still_frees_every_object() {
    use skmem_traits::ObjectCtor;
    #[derive(Default)]
    struct PanicOnFifth(std::sync::atomic::AtomicU32);
    impl ObjectCtor for PanicOnFifth {
        fn construct(
            &self,
            _: skmem_traits::ObjectInfo,
            _: Option<skmem_traits::ObjectInfo>,
            _: AllocFlags,
        ) -> skmem_traits::Result<()> {
            Ok(())
        }
        fn destruct(&self, _: skmem_traits::ObjectInfo, _: Option<skmem_traits::ObjectInfo>) {
            if self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 4 {
                panic!("fifth destructor panics");
            }
        }
    }
    let region = slab_common::heap_region("dtor-panic", 64, 256);
    let cache = SlabCache::new(
        region,
        SlabConfig::new("dtor-panic", 64),
        PanicOnFifth::default(),
    )
    .unwrap();
    let mut out = vec![std::mem::MaybeUninit::uninit(); 100];
    assert_eq!(cache.alloc_batch(&mut out, AllocFlags::NoSleep), 100);
    // SAFETY: `alloc_batch` initialised every element.
    let objs: Vec<_> = out.iter().map(|o| unsafe { o.assume_init() }).collect();
    // SAFETY: all allocated above, distinct, not used again.
    let caught = catch_unwind(AssertUnwindSafe(|| unsafe { cache.free_batch(&objs) }));
    assert!(caught.is_err(), "the destructor's panic is resumed");
    let s = cache.stats();
    assert_eq!(s.sl_bufinuse, 0, "every object is back: {s:?}");
    assert_eq!((s.sl_free, s.dtor), (100, 100));
    cache.check_invariants().unwrap();
    // A single free whose destructor panics gives its object back too.
    let one = cache.alloc_with(AllocFlags::NoSleep).unwrap();
    cache
        .ctor()
        .0
        .store(4, std::sync::atomic::Ordering::Relaxed);
    // SAFETY: allocated above, not used again.
    assert!(catch_unwind(AssertUnwindSafe(|| unsafe { cache.free(one) })).is_err());
    assert_eq!(cache.stats().sl_bufinuse, 0);
    cache.check_invariants().unwrap();
}

/// A constructor that panics in the middle of a batch allocation loses
/// nothing: the objects already constructed for the batch are destructed
/// and freed, the failing one and the rest of its group go back
/// unconstructed, and the panic goes on. Found by the `cache_ops` fuzz
/// target (31 objects of a group were lost).
#[test]
fn constructor_panic_in_a_batch_loses_no_object() {
    use skmem_traits::{ObjectCtor, ObjectInfo, Result};
    use std::sync::atomic::AtomicU64;

    struct PanicOnNth {
        nth: u64,
        built: AtomicU64,
        torn: AtomicU64,
    }
    impl ObjectCtor for PanicOnNth {
        fn construct(&self, _: ObjectInfo, _: Option<ObjectInfo>, _: AllocFlags) -> Result<()> {
            let n = self.built.fetch_add(1, Ordering::Relaxed) + 1;
            if n == self.nth {
                panic!("constructor {n} panics");
            }
            Ok(())
        }
        fn destruct(&self, _: ObjectInfo, _: Option<ObjectInfo>) {
            self.torn.fetch_add(1, Ordering::Relaxed);
        }
    }

    let region = Region::<Heap>::new(
        RegionParams::new("ctor-panic-batch", 64, 256),
        HeapConfig::default(),
    )
    .unwrap();
    let ctor = Arc::new(PanicOnNth {
        nth: 5,
        built: AtomicU64::new(0),
        torn: AtomicU64::new(0),
    });
    let slab = SlabCache::new(
        region,
        SlabConfig::new("ctor-panic-batch", 64),
        ctor.clone(),
    )
    .unwrap();
    let mut out = vec![MaybeUninit::uninit(); 40];
    let r = catch_unwind(AssertUnwindSafe(|| {
        slab.alloc_batch(&mut out, AllocFlags::NoSleep)
    }));
    assert!(r.is_err(), "the constructor's panic reaches the caller");
    assert_eq!(
        slab.stats().sl_bufinuse,
        0,
        "every object of the batch is back"
    );
    // The four constructed before the panic were destructed on the way back.
    assert_eq!(ctor.torn.load(Ordering::Relaxed), 4);
    let n = slab.alloc_batch(&mut out, AllocFlags::NoSleep);
    assert_eq!(n, 40, "the cache still works");
    for o in &out[..n] {
        // SAFETY: allocated above, freed once.
        unsafe { slab.free(o.assume_init()) };
    }
    assert_eq!(slab.stats().sl_bufinuse, 0);
}

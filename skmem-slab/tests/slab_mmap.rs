//! Slab cache on the memfd-backed `Mmap` backend: arithmetic lookup, precise
//! bad-free diagnostics, and batch refusal on shareable regions.
#![cfg(all(target_os = "linux", not(miri)))]

mod slab_common;

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::Arc;

use skmem_backends::{Heap, HeapConfig, Mmap, MmapConfig};
use skmem_slab::{Region, RegionParams, SlabCache, SlabConfig};
use skmem_traits::{AllocFlags, Error, NoCtor, ObjectInfo, RegionMode, SegmentSource};

use slab_common::*;

fn mmap_region(name: &str, size: usize, count: usize, mode: RegionMode) -> Arc<Region<Mmap>> {
    let params = RegionParams::new(name, size, count)
        .seg_size(4096)
        .mode(mode | RegionMode::NOMAGAZINES);
    Region::new(params, MmapConfig::default().with_name("slab-test")).unwrap()
}

/// Allocates every object, checks each object's info against the region,
/// and returns the infos.
fn infos<S: SegmentSource>(cache: &SlabCache<S>) -> Vec<ObjectInfo> {
    let region = cache.region();
    let layout = *region.layout();
    let mut out = Vec::new();
    while let Ok(p) = cache.alloc_with(AllocFlags::NoSleep) {
        let info = cache.object_info(p.as_ptr()).unwrap();
        let seg = region.segment_of(p.as_ptr()).unwrap();
        assert_eq!(info.addr, p);
        assert_eq!(info.segment_index, seg.index);
        assert_eq!(
            p.as_ptr() as usize - seg.base.as_ptr() as usize,
            info.index_in_segment as usize * cache.chunk_size()
        );
        assert_eq!(
            info.index_in_region,
            seg.index * layout.objs_per_seg + info.index_in_segment
        );
        out.push(info);
    }
    assert_eq!(out.len(), layout.obj_count);
    let distinct: HashSet<u32> = out.iter().map(|i| i.index_in_region).collect();
    assert_eq!(distinct.len(), out.len());
    assert!(distinct.iter().all(|&i| (i as usize) < layout.obj_count));
    out
}

#[test]
fn hash_and_arithmetic_lookup_agree() {
    let heap_region = Region::<Heap>::new(
        RegionParams::new("h", 192, 100)
            .seg_size(4096)
            .mode(RegionMode::NOMAGAZINES),
        HeapConfig::default(),
    )
    .unwrap();
    let heap = SlabCache::new(heap_region, SlabConfig::new("h", 192), NoCtor).unwrap();
    let mmap = SlabCache::new(
        mmap_region("m", 192, 100, RegionMode::empty()),
        SlabConfig::new("m", 192),
        NoCtor,
    )
    .unwrap();
    assert!(!heap.lookup_is_arithmetic());
    assert!(mmap.lookup_is_arithmetic());
    let hi = infos(&heap);
    let mi = infos(&mmap);
    assert!(heap.stats().sl_hash_size >= 100);
    assert_eq!(mmap.stats().sl_hash_size, 0);
    // Same layout, same allocation order: the same indices come out.
    let key = |v: &[ObjectInfo]| -> Vec<(u32, u32, u32)> {
        let mut k: Vec<_> = v
            .iter()
            .map(|i| (i.index_in_region, i.segment_index, i.index_in_segment))
            .collect();
        k.sort_unstable();
        k
    };
    assert_eq!(key(&hi), key(&mi));
    // Arithmetic: object addresses are span + index arithmetic.
    let span = mmap.region().span().unwrap().as_ptr() as usize;
    let seg_size = mmap.region().layout().seg_size;
    for i in &mi {
        assert_eq!(
            i.addr.as_ptr() as usize,
            span + i.segment_index as usize * seg_size
                + i.index_in_segment as usize * mmap.chunk_size()
        );
    }
    for i in hi {
        // SAFETY: allocated by `infos`, freed once.
        unsafe { heap.free(i.addr) };
    }
    for i in mi {
        // SAFETY: allocated by `infos`, freed once.
        unsafe { mmap.free(i.addr) };
    }
    heap.reap();
    mmap.reap();
    assert_eq!(heap.region().segments_in_use(), 0);
    assert_eq!(mmap.region().segments_in_use(), 0);
}

#[test]
fn arithmetic_bad_frees_are_told_apart() {
    let c = SlabCache::new(
        mmap_region("precise", 64, 128, RegionMode::empty()),
        SlabConfig::new("precise", 64),
        NoCtor,
    )
    .unwrap();
    let p = c.alloc_with(AllocFlags::NoSleep).unwrap();
    let q = c.alloc_with(AllocFlags::NoSleep).unwrap();
    let msg = |addr: NonNull<u8>| {
        let caught = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: every address passed here must be refused.
            unsafe { c.free(addr) }
        }))
        .unwrap_err();
        panic_message(caught)
    };
    let interior = NonNull::new(q.as_ptr().wrapping_add(8)).unwrap();
    let m = msg(interior);
    assert!(
        m.contains("`precise`") && m.contains("not at an object"),
        "{m}"
    );
    // SAFETY: legitimate free.
    unsafe { c.free(p) };
    let m = msg(p);
    assert!(
        m.contains(&format!("{p:p}")) && m.contains("double free"),
        "{m}"
    );
    // An address in the span but in a segment this cache does not hold.
    let seg_size = c.region().layout().seg_size;
    let other_seg = NonNull::new(q.as_ptr().wrapping_add(seg_size)).unwrap();
    let m = msg(other_seg);
    assert!(m.contains("foreign"), "{m}");
    let mut local = 0u64;
    let m = msg(NonNull::from(&mut local).cast());
    assert!(m.contains("foreign"), "{m}");
    c.check_invariants().unwrap();
    // SAFETY: legitimate free.
    unsafe { c.free(q) };
    c.reap();
    assert_eq!(c.region().segments_in_use(), 0);
}

#[test]
fn batch_refused_on_mmapok_mmap_region() {
    let region = mmap_region("shared", 64, 64, RegionMode::MMAPOK);
    match SlabCache::new(region.clone(), SlabConfig::new("s", 64).batch(true), NoCtor) {
        Err(Error::InvalidParam { param, .. }) => assert_eq!(param, "batch"),
        other => panic!("expected InvalidParam(batch), got {other:?}"),
    }
    // A private mmap region allows chains.
    let private = mmap_region("private", 64, 64, RegionMode::empty());
    let c = SlabCache::new(private, SlabConfig::new("p", 64).batch(true), NoCtor).unwrap();
    let (head, n) = c.alloc_chain(10, AllocFlags::NoSleep).unwrap();
    assert_eq!(n, 10);
    // SAFETY: the chain came from alloc_chain, freed once.
    assert_eq!(unsafe { c.free_chain(head) }, 10);
    c.reap();
    assert_eq!(c.region().segments_in_use(), 0);
}

#[test]
fn clear_on_free_on_mmap_and_kreadonly_refusal() {
    let ro = mmap_region("ro", 64, 64, RegionMode::KREADONLY);
    let err =
        SlabCache::new(ro, SlabConfig::new("ro", 64).clear_on_free(true), NoCtor).unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidParam {
            param: "clear_on_free",
            ..
        }
    ));

    let region = mmap_region("clr", 64, 64, RegionMode::MONOLITHIC);
    let c = SlabCache::new(
        region,
        SlabConfig::new("clr", 64).clear_on_free(true),
        NoCtor,
    )
    .unwrap();
    let p = c.alloc_with(AllocFlags::NoSleep).unwrap();
    // SAFETY: ours, 64 bytes.
    unsafe { std::ptr::write_bytes(p.as_ptr(), 0xEE, 64) };
    // SAFETY: legitimate free.
    unsafe { c.free(p) };
    let q = c.alloc_with(AllocFlags::NoSleep).unwrap();
    assert_eq!(p, q);
    // SAFETY: ours, 64 bytes.
    assert_eq!(unsafe { bytes(q, 64) }, vec![0; 64]);
    // SAFETY: legitimate free.
    unsafe { c.free(q) };
}

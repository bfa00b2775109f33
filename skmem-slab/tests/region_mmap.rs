//! A region on the mmap backend: freed segments hold no pages (mincore and
//! /proc/self/maps), lookups by span arithmetic, persistent (wired)
//! segments, and blocking allocation on real shared memory.
#![cfg(all(target_os = "linux", not(miri)))]

mod region_common;

use std::sync::{mpsc, Arc};
use std::thread;

use region_common::{
    assert_filled, assert_stats_consistent, fill, page_size, params, resident_pages,
};
use skmem_backends::{Mmap, MmapConfig};
use skmem_slab::{Region, Segment};
use skmem_traits::{AllocFlags, RegionMode};

const SEG: usize = 16384;

fn region(name: &'static str, n: usize, mode: RegionMode) -> Arc<Region<Mmap>> {
    let p = skmem_slab::RegionParams::new(name, SEG, n)
        .seg_size(SEG)
        .mode(mode);
    let r = Region::<Mmap>::new(p, MmapConfig::default().with_name(name)).unwrap();
    assert_eq!(
        (r.layout().seg_size, r.layout().seg_count as usize),
        (SEG, n)
    );
    r
}

fn free(r: &Region<Mmap>, seg: Segment) {
    // SAFETY: the tests free only segments they allocated and no longer use.
    unsafe { r.free_segment(seg) }
}

fn maps_mention(name: &str) -> bool {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .any(|l| l.contains(&format!("/memfd:{name} ")))
}

#[test]
fn freed_segments_hold_no_pages() {
    let r = region("rg-pages", 4, RegionMode::empty());
    let span = r.span().unwrap();
    assert!(maps_mention("rg-pages"), "the span is a memfd mapping");
    assert_eq!(
        resident_pages(span, 4 * SEG),
        0,
        "an idle region holds no memory"
    );

    let segs: Vec<_> = (0..4)
        .map(|_| r.alloc_segment(AllocFlags::NoSleep).unwrap())
        .collect();
    // Created but untouched: still no pages.
    assert_eq!(resident_pages(span, 4 * SEG), 0);
    for seg in &segs {
        fill(seg.base, SEG, 0x3C);
        assert_eq!(resident_pages(seg.base, SEG), SEG / page_size());
    }
    assert_stats_consistent(&r, 4);

    free(&r, segs[1]);
    free(&r, segs[3]);
    assert_eq!(
        resident_pages(segs[1].base, SEG),
        0,
        "freed segment 1 still has pages"
    );
    assert_eq!(
        resident_pages(segs[3].base, SEG),
        0,
        "freed segment 3 still has pages"
    );
    assert_eq!(resident_pages(segs[0].base, SEG), SEG / page_size());
    assert_filled(segs[2].base, SEG, 0x3C);

    // A re-created segment reads as zero.
    let again = r.alloc_segment(AllocFlags::NoSleep).unwrap();
    assert_eq!(again.index, 1);
    assert_eq!(
        again.base, segs[1].base,
        "segment i always sits at span + i * seg_size"
    );
    assert_filled(again.base, SEG, 0);

    for seg in [segs[0], segs[2], again] {
        free(&r, seg);
    }
    assert_eq!(resident_pages(span, 4 * SEG), 0, "all memory back");
    assert_stats_consistent(&r, 0);
    drop(r);
    assert!(
        !maps_mention("rg-pages"),
        "the span is unmapped with the region"
    );
}

#[test]
fn lookups_use_span_arithmetic() {
    let r = region("rg-lookup", 3, RegionMode::empty());
    let span = r.span().unwrap().as_ptr();
    let one = r.alloc_segment_at(1, AllocFlags::NoSleep).unwrap();
    assert_eq!(one.base.as_ptr(), span.wrapping_add(SEG));
    for off in [0, 1, SEG - 1] {
        let addr = one.base.as_ptr().wrapping_add(off);
        assert_eq!(r.index_by_arithmetic(addr), Some(1));
        assert_eq!(r.segment_of(addr), Some(one));
    }
    // In the span but not live: arithmetic finds the index, lookup does not.
    let zero_addr = span.wrapping_add(5);
    assert_eq!(r.index_by_arithmetic(zero_addr), Some(0));
    assert_eq!(r.segment_of(zero_addr), None);
    // Outside the span.
    assert_eq!(r.index_by_arithmetic(span.wrapping_add(3 * SEG)), None);
    assert_eq!(r.segment_of(span.wrapping_add(3 * SEG)), None);
    assert_eq!(r.segment_of(span.wrapping_sub(1)), None);
    free(&r, one);
    assert_eq!(r.segment_of(span.wrapping_add(SEG)), None);
}

#[test]
fn persistent_segments_are_populated_wired_and_counted() {
    // Two 16 KiB segments stay well under the usual 64 KiB RLIMIT_MEMLOCK.
    let r = region("rg-wired", 2, RegionMode::PERSISTENT);
    let a = r.alloc_segment(AllocFlags::NoSleep).unwrap();
    let b = r.alloc_segment(AllocFlags::NoSleep).unwrap();
    // Populated without being touched.
    assert_eq!(resident_pages(a.base, SEG), SEG / page_size());
    assert!(r.source().is_wired(a.index) && r.source().is_wired(b.index));
    let s = r.stats();
    assert_eq!((s.meminuse, s.w_meminuse), (2 * SEG as u64, 2 * SEG as u64));
    assert_stats_consistent(&r, 2);
    free(&r, a);
    assert!(!r.source().is_wired(a.index));
    assert_eq!(resident_pages(a.base, SEG), 0);
    assert_eq!(r.stats().w_meminuse, SEG as u64);
    free(&r, b);
    assert_eq!(r.stats().w_meminuse, 0);
    assert_stats_consistent(&r, 0);
}

#[test]
fn wired_accounting_follows_what_the_source_did() {
    use skmem_traits::SegmentSource;
    // Persistent segments of a source told not to wire them are populated
    // but not locked, so they are not wired memory.
    let name = "rg-unwired";
    let p = skmem_slab::RegionParams::new(name, SEG, 2)
        .seg_size(SEG)
        .mode(RegionMode::PERSISTENT);
    let config = MmapConfig::default()
        .with_name(name)
        .with_wire_persistent(false);
    let r = Region::<Mmap>::new(p, config).unwrap();
    let a = r.alloc_segment(AllocFlags::NoSleep).unwrap();
    let b = r.alloc_segment(AllocFlags::NoSleep).unwrap();
    assert!(!r.source().is_wired(a.index) && !r.source().is_wired(b.index));
    let s = r.stats();
    assert_eq!(
        (s.meminuse, s.w_meminuse),
        (2 * SEG as u64, 0),
        "persistent but not wired"
    );
    // Wiring one segment later counts exactly that one.
    // SAFETY: `a` is live at `a.base`.
    unsafe { r.source().wire(a.index, a.base) }.unwrap();
    assert_eq!(r.stats().w_meminuse, SEG as u64);
    // SAFETY: as above.
    unsafe { r.source().unwire(a.index, a.base) }.unwrap();
    assert_eq!(r.stats().w_meminuse, 0);
    assert_stats_consistent(&r, 2);
    free(&r, a);
    free(&r, b);
    assert_stats_consistent(&r, 0);
}

#[test]
fn blocked_allocation_is_woken_by_a_free_on_mmap() {
    let r = region("rg-block", 1, RegionMode::empty());
    let held = r.alloc_segment(AllocFlags::NoSleep).unwrap();
    fill(held.base, SEG, 0xEE);
    let (tx, rx) = mpsc::channel();
    let waiter = {
        let r = Arc::clone(&r);
        thread::spawn(move || {
            tx.send(r.alloc_segment(AllocFlags::Sleep).unwrap())
                .unwrap()
        })
    };
    while r.stats().waits == 0 {
        thread::yield_now();
    }
    assert!(
        rx.try_recv().is_err(),
        "returned while the only segment was held"
    );
    free(&r, held);
    let seg = rx.recv().unwrap();
    waiter.join().unwrap();
    assert_eq!(seg.base, held.base);
    // The old contents are gone: the free punched the pages out.
    assert_filled(seg.base, SEG, 0);
    free(&r, seg);
    assert_eq!(resident_pages(r.span().unwrap(), SEG), 0);
}

#[test]
fn small_segment_params_helper_fits_mmap_too() {
    // The shared 4 KiB-segment parameters work on mmap as well.
    let r = Region::<Mmap>::new(params("rg-4k", 3), MmapConfig::default()).unwrap();
    let segs: Vec<_> = (0..3)
        .map(|_| r.alloc_segment(AllocFlags::NoSleep).unwrap())
        .collect();
    assert!(r.alloc_segment(AllocFlags::NoSleep).is_err());
    for seg in segs {
        free(&r, seg);
    }
    assert_stats_consistent(&r, 0);
}
